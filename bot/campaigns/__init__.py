"""Campaigns: target segments, enroll their contacts as advocates, and invite them once."""
