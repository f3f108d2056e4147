//! Operator tools of the admin layer: who may use them, and that dead jobs run again. (Billing's
//! operator routes are tested with billing, in `billing_operator`.)
mod access;
mod dead_jobs;
