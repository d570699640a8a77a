"""Contacts in: reading CSV files, validating rows, staging them and applying a batch."""
