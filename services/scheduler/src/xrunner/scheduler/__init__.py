"""The scheduler: folds the job log into Postgres and decides admission, order and placement."""
