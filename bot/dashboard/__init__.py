"""The web dashboard: aiohttp, server-rendered Jinja2 templates, Discord OAuth2 login, no build step, no CDN.

``app`` builds the application, ``auth`` logs users in, ``csrf`` guards every state-changing request, ``access``
reads what a user may do from the bot's own live view of the guild, ``pages`` serves the pages.
"""
