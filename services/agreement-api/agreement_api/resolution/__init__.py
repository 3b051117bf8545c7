"""Who must be told what for a case (resolution) and where agreements are missing (coverage)."""
