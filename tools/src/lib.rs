
pub mod upstash_server;
pub mod cli;
