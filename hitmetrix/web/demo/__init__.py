"""The demo dating site's data (members, messages, sign-in sessions); its pages and static files live beside it."""
