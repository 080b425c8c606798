"""Attachments of a case: fax scans, photos and documents, stored outside the web root."""
