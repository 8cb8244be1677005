
pub mod stack;
