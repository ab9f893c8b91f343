//! The durable jobs this service runs on the queue.

pub mod grade;

