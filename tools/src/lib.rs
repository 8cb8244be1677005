
pub mod upstash_server;
