//! Integration tests: the real service against a real JupyterHub, grading with the real
//! otter-grader (local runner). Setup: scripts/setup-python.sh, scripts/setup-jupyterhub.sh.

mod auth;
mod backup;
mod browser;
mod calendar;
mod cluster;
mod crash;
mod deployment;
mod docker;
#[path = "../support/edx.rs"]
mod edx;
mod edx_order;
mod edx_posting;
mod export;
mod fairness;
mod faults;
mod grading;
mod helpers;
mod hosts;
mod hosts_cluster;
mod hub;
mod intake;
mod lab;
mod lti13;
#[path = "../support/lti13.rs"]
mod lti13_platform;
mod lying_kernel;
mod metrics;
mod openapi;
mod platform;
mod staff;
mod trusted;
mod warm;
#[path = "../support/webhooks.rs"]
mod webhooks;
mod xqueue;
#[path = "../support/xqueue.rs"]
mod xqueue_peer;
