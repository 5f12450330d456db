from services.worker.tasks import batch_tasks, scheduled_tasks, scraper_tasks

__all__ = ["batch_tasks", "scheduled_tasks", "scraper_tasks"]
