"""The console's screens beyond the main one."""
