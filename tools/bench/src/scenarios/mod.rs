pub mod baseline;
pub mod jobs;
