"""Where entries live: in process, in Redis, nowhere."""
