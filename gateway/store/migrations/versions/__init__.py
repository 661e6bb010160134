"""The store's revisions, oldest first by ``down_revision``."""
