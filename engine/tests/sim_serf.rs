use core::time::Duration;
use engine::proto::memberlist::Config;
use engine::proto::serf::{Event, MemberStatus};
use engine::sim::cluster::*;
use engine::sim::NetConfig;

#[test]
fn serf_smoke() {
    let mut sim = serf_cluster(1, 5, NetConfig::default(), &Config::lan());
    serf_join_all(&mut sim, 0);
    let t = sim.run_until_true(Duration::from_secs(30), serf_converged);
    eprintln!("converged {t:?}");
    assert!(t.is_some());
    sim.with(2, |s, now| s.user_event(now, "deploy", b"v1", false).unwrap());
    sim.run_for(Duration::from_secs(5));
    let got = sim
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::User(u) if u.name == "deploy"))
        .count();
    assert_eq!(got, 5);
    sim.with(3, |s, now| s.leave(now).unwrap());
    sim.run_for(Duration::from_secs(10));
    for i in [0, 1, 2, 4] {
        assert_eq!(sim.node(i).endpoint.member("n3").unwrap().status, MemberStatus::Left, "n{i}");
    }
    assert!(sim
        .events
        .iter()
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::LeaveDone { error: None })));
}
