"""Scraping jobs: the bodies of the job tasks that collect metrics through the platform adapters
(gristmill.scrapers). One account, a backfill, fan-out over many accounts, and the batches that
scrape fan-out children concurrently."""
