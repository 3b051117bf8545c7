#!/bin/sh
# Writes rabbitmq.conf from the official image's variables, then runs the broker in the
# foreground as the rabbitmq user. Other users than guest may connect from any address.
set -eu
if [ "${1:-rabbitmq-server}" != rabbitmq-server ]; then
  exec "$@"
fi

{
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
  echo "listeners.tcp.default = ${RABBITMQ_NODE_PORT:-5672}"
  # As the official image: guest may connect from other hosts (a container is never local).
  echo "loopback_users = none"
} > /etc/rabbitmq/rabbitmq.conf
unset RABBITMQ_NODE_PORT
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq

export HOME=/var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
