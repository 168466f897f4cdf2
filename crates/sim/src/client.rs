//! Clients: each writes unique ids, one at a time, to whichever node accepts writes
//! (libpq's `target_session_attrs=read-write` over every host), and reports every
//! acknowledgement it receives to the checker.

use std::sync::Arc;
use std::time::Duration;

use crate::check::Ack;
use crate::scenario::Ep;
use crate::world::World;

/// How long a client waits for a commit (a statement timeout).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn run(world: Arc<World>, k: usize) {
    let n = world.scenario.nodes;
    let me = Ep::Client(k);
    let mut current = 0;
    loop {
        let pause = world.lock().rng.millis(20, 80);
        tokio::time::sleep(pause).await;
        let mut target = None;
        for j in 0..n {
            let i = (current + j) % n;
            let primary = world
                .rpc(me, Ep::Node(i), CONNECT_TIMEOUT, |s| {
                    Some(s.nodes[i].pg.is_primary())
                })
                .await;
            if primary == Some(true) {
                target = Some(i);
                break;
            }
        }
        let Some(i) = target else {
            continue;
        };
        current = i;
        let id = {
            let mut s = world.lock();
            s.next_write += 1;
            s.next_write
        };
        // The commit's request, its wait for flush and standbys, and the answer.
        let Some(Some(rx)) = world
            .rpc(me, Ep::Node(i), CONNECT_TIMEOUT, |s| {
                Some(s.begin_commit(i, id))
            })
            .await
        else {
            continue;
        };
        let Ok(Ok((timeline, synchronous))) = tokio::time::timeout(COMMIT_TIMEOUT, rx).await else {
            continue;
        };
        let sent_at = crate::world::now();
        if world.send(Ep::Node(i), me).await {
            world.lock().check.acked(Ack {
                id,
                node: i,
                timeline,
                sent_at,
                synchronous,
            });
        }
    }
}
