//! Tenant-isolated DynamoDB keys (being written).
