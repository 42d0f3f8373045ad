//! HTTP API of the spec (POST /generate, /health, /, /docs), async jobs, metrics, and the RunPod
//! serverless worker, all over one engine thread that owns the device.
