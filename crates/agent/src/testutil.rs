//! Helpers the agent's unit tests share.

use pgkeel_core::Config;

/// A minimal valid node config: `node1` of scope `demo`, everything on loopback.
pub(crate) fn config() -> Config {
    let text = "\
scope: demo
name: node1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
postgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /pg}
";
    match pgkeel_core::config::load_str(text, "test.yml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}
