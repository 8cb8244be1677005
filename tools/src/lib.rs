
pub mod upstash_server;
pub mod cli;
pub mod stack;
