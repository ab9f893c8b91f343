//! The worker runtime: pools of workers that claim jobs from the durable queue (stored by
//! [`crate::db::jobs`]), run them with the lease renewed, and settle each attempt.

pub mod worker;

#[cfg(test)]
mod tests;
