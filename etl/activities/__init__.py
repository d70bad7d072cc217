"""The activities: where the workflows' steps meet sources and PostgreSQL (blocking, on threads).

    batch.py         ETLFlow's extract, transform, load and clean-up
    streaming.py     StreamingETLFlow's split and chunk activities
    classify.py      one classification of errors into retryable and not, for every activity
    heartbeat.py     heartbeats from a helper thread while an activity blocks
    backpressure.py  memory backpressure for streaming workers
"""
