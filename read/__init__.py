"""The read side: what the doors show, computed from the projection tables and the histories."""
