//! RunPod serverless worker.
