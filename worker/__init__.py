"""corescale.worker: serves an aiohttp application as one process or as a prefork master."""
