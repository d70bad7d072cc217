"""GitHub: issues and pull requests of one repository, read with httpx from the REST API."""
