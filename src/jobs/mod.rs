//! The durable jobs this service runs on the queue.

pub mod checks;
pub mod grade;
pub mod post_score;
