"""XNAT-compatible test and demo server (aiohttp.web); not XNAT itself."""
