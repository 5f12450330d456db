from services.worker.tasks import scheduled_tasks, scraper_tasks, utils

__all__ = ["scheduled_tasks", "scraper_tasks", "utils"]
