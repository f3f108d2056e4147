//! What only the `ironclad` command does (the library knows nothing of it): code generation.
pub mod generate;
