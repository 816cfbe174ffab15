"""The publish stage: desired quantities -> the channels' APIs, per account, within
rate limits, acting on the error table."""
