"""What both generations use: conventions, content policy and message formats, span emission, metrics, the
off-path fetcher, the operation base."""
