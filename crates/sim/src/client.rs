//! Clients: each writes unique ids, one at a time, to whichever node accepts writes
//! (libpq's `target_session_attrs=read-write` over every host), and reports every
//! acknowledgement it receives to the checker. A client keeps its session to the server
//! it wrote to last, as an application's connection pool does: open sessions matter when
//! a postmaster alone hangs (they keep working, new connections are not accepted).

use std::sync::Arc;
use std::time::Duration;

use crate::check::Ack;
use crate::scenario::Ep;
use crate::world::{State, World};

/// How long a client waits for a commit (a statement timeout).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What asking a node "are you a primary?" gets.
enum Ask {
    /// Yes, in this run of the server (the session belongs to it).
    Primary(u64),
    NotPrimary,
    /// Nothing, until the client gives up.
    Silent,
}

/// The answer of node `i`, over the open session to run `session` of its server if there
/// is one, else over a new connection.
fn ask(s: &State, i: usize, session: Option<u64>) -> Ask {
    let pg = &s.nodes[i].pg;
    let open = session.is_some_and(|inc| inc == pg.incarnation && pg.running());
    // An open session's backend answers unless it is stopped; a new one needs the
    // postmaster to accept it and the storage to start a backend.
    let silent = if open {
        s.pg_hung(i)
    } else {
        pg.running() && (s.pm_hung(i) || s.stalled(i))
    };
    if silent {
        Ask::Silent
    } else if pg.is_primary() {
        Ask::Primary(pg.incarnation)
    } else {
        Ask::NotPrimary
    }
}

pub async fn run(world: Arc<World>, k: usize) {
    let n = world.scenario.nodes;
    let me = Ep::Client(k);
    let mut current = 0;
    // The session of the last write: (node, run of its server).
    let mut session: Option<(usize, u64)> = None;
    loop {
        let pause = world.lock().rng.millis(20, 80);
        tokio::time::sleep(pause).await;
        let mut target = None;
        for j in 0..n {
            let i = (current + j) % n;
            let over = session.filter(|(s, _)| *s == i).map(|(_, inc)| inc);
            let answer = world
                .rpc(me, Ep::Node(i), CONNECT_TIMEOUT, |s| Some(ask(s, i, over)))
                .await;
            match answer {
                Some(Ask::Primary(inc)) => {
                    target = Some((i, inc));
                    break;
                }
                Some(Ask::Silent) => tokio::time::sleep(CONNECT_TIMEOUT).await,
                Some(Ask::NotPrimary) | None => {}
            }
            if over.is_some() {
                session = None;
            }
        }
        let Some((i, incarnation)) = target else {
            continue;
        };
        current = i;
        session = Some((i, incarnation));
        let id = {
            let mut s = world.lock();
            s.next_write += 1;
            s.next_write
        };
        // The commit's request, its wait for flush and standbys, and the answer.
        let Some(Some(rx)) = world
            .rpc(me, Ep::Node(i), CONNECT_TIMEOUT, |s| {
                Some(s.begin_commit(i, incarnation, id))
            })
            .await
        else {
            session = None;
            continue;
        };
        let Ok(Ok((timeline, synchronous))) = tokio::time::timeout(COMMIT_TIMEOUT, rx).await else {
            session = None;
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
