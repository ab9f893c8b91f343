//! otter-service: a JupyterHub-authenticated Jupyter notebook autograding service.

pub mod ags;
pub mod app;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod course;
pub mod db;
pub mod export;
pub mod grading;
pub mod hosts;
pub mod http;
pub mod jobs;
pub mod jupyterhub;
pub mod lti;
pub mod metrics;
pub mod notebook;
pub mod openapi;
pub mod platform;
pub mod queue;
pub mod secret;
pub mod settings;
pub mod telemetry;
pub mod users;
pub mod xqueue;
