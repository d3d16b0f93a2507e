"""People: parties with their keys, and access tokens with their roles."""
