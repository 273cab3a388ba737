//! Taking a writer's verified bundle (PROTOCOL.md 4.12): its data, sessions or heartbeats are
//! handled one by one, and a bundle that brought something new is kept for repair and passed
//! on whole, as its writer signed it.

use std::time::Instant;

use super::receive::ForwardPlan;
use super::*;
use crate::proto::flood::Via;
use crate::proto::held_links::HeldLink;
use crate::proto::path::Path;
use crate::proto::shared::Shared;
use crate::proto::signing;
use crate::proto::wire::{BUNDLE_OVERHEAD, Body, Bundle, LinkHash, Packet};

impl LobbyState {
    /// A bundle whose signature verified, with the packets inside (one kind, its writer's
    /// own), that came `via`; `share` is its share of the datagram's bytes. Returns the bytes
    /// of that share spent on the request credit of sources its sessions introduced.
    pub fn on_bundle(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        mut bundle: Bundle,
        packets: Vec<Packet>,
        via: Via,
        share: u64,
    ) -> u64 {
        let repairer = bundle.repairer.take();
        match packets.first().map(|p| &p.body) {
            Some(Body::Data(_)) => {
                self.on_data_bundle(sh, now, bundle, packets, repairer, via);
                0
            }
            Some(Body::Session(_)) => {
                let each = share / packets.len() as u64;
                let mut spent = 0;
                for p in packets {
                    if let Body::Session(s) = p.body {
                        spent += self.on_session(sh, now, s, via, each);
                    }
                }
                spent
            }
            Some(Body::Heartbeat(_)) => {
                let mut new = false;
                for p in packets {
                    if let Body::Heartbeat(h) = p.body {
                        new |= self.on_heartbeat(sh, now, h);
                    }
                }
                if new {
                    // Presence travels as data does, without the forward limit (7.6).
                    let plan = self.forward_plan(sh, now, via);
                    self.pass_on(sh, plan, &bundle, false);
                }
                0
            }
            // Opening admits no other kind.
            _ => 0,
        }
    }

    /// A link that no verified chain vouches for yet: held for its anchor if it brings data
    /// of its writer that this node lacks (PROTOCOL.md 4.13).
    pub fn hold_link(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        path: Path,
        bundle: Bundle,
        share: u64,
    ) {
        let packets = match signing::contents(&bundle) {
            Ok(p) => p,
            Err(_) => {
                sh.stats.bad_bundles += 1;
                return;
            }
        };
        let seqs: Vec<u64> = packets
            .iter()
            .filter_map(|p| match &p.body {
                Body::Data(d) => Some(d.seq),
                _ => None,
            })
            .collect();
        let (Some(&lo), Some(&hi)) = (seqs.iter().min(), seqs.iter().max()) else {
            return;
        };
        if !seqs.iter().any(|&s| self.is_new(bundle.source, s)) {
            sh.stats.duplicate_packets += seqs.len() as u64;
            return;
        }
        sh.stats.links_held += 1;
        let hash = signing::link_hash(bundle.lobby, bundle.source, &bundle.packets);
        sh.stats.links_dropped += self.held_links.hold(HeldLink {
            hash,
            bundle,
            path,
            share,
            seqs: (lo, hi),
            since: now,
        });
    }

    /// The held links that a verified `chain` vouches for, in its order.
    pub fn release_links(&mut self, chain: &[LinkHash]) -> Vec<HeldLink> {
        self.held_links.take(chain)
    }

    fn on_data_bundle(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        bundle: Bundle,
        packets: Vec<Packet>,
        repairer: Option<PeerId>,
        via: Via,
    ) {
        let source = bundle.source;
        let first_seq = packets.iter().find_map(|p| match &p.body {
            Body::Data(d) => Some(d.seq),
            _ => None,
        });
        let new = packets
            .iter()
            .any(|p| matches!(&p.body, Body::Data(d) if self.is_new(d.source, d.seq)));
        if !new {
            sh.stats.duplicate_packets += packets.len() as u64;
            if let Some(r) = repairer {
                for p in &packets {
                    if let Body::Data(d) = &p.body {
                        self.heard_repair(sh, now, r, d.source, d.seq);
                    }
                }
            }
            // A friend that pushes what another path brought first is asked to stop (7.4,
            // lazy links). Repairs answer requests: only pushed data can be redundant.
            let active = sh.multicast
                && self
                    .flood
                    .active_bridge(sh.me, now, self.session_base(sh), sh.cfg.peer_timeout);
            if repairer.is_none()
                && let Some(seq) = first_seq
                && let Some(a) = self.flood.on_duplicate(via, source, seq, active)
            {
                sh.stats.prunes += 1;
                self.send_session_to(sh, now, a);
            }
            return;
        }
        let mut plan = self.forward_plan(sh, now, via);
        if !plan.is_empty() {
            let bytes = bundle.packets.len() + BUNDLE_OVERHEAD;
            if !self.flood.allow_forward(source, bytes, now) {
                if matches!(via, Via::Friend(_)) {
                    // Dropped before it is held, so a later copy is taken (7.4).
                    sh.stats.forward_throttled += 1;
                    return;
                }
                plan = ForwardPlan::default();
            }
        }
        let mut held = Vec::with_capacity(packets.len());
        for p in packets {
            if let Body::Data(d) = p.body {
                let seq = d.seq;
                if self.on_data(sh, now, d, repairer, via) {
                    held.push(seq);
                }
            }
        }
        if held.is_empty() {
            return;
        }
        self.pass_on(sh, plan, &bundle, true);
        self.store.insert(bundle, &held, |_, _| {});
    }
}
