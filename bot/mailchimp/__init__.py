"""Mailchimp: connect an account (OAuth or an API key) and import audience lists."""
