//! The events of a trace with their parse layouts, and which event a sample
//! belongs to.

use crate::perf::attr::{sample, Endian, EventAttr};
use crate::perf::record::ParseInfo;
use crate::trace::meta::EventDesc;
use rustc_hash::FxHashMap as HashMap;

#[derive(Debug, Clone)]
pub struct EventInfo {
    pub name: String,
    pub attr: EventAttr,
    pub parse: ParseInfo,
    /// The period of samples that carry none (no PERF_SAMPLE_PERIOD): the
    /// attr's fixed period, as perf assumes; 1 in frequency mode.
    pub default_period: u64,
}

#[derive(Debug, Clone)]
pub struct Events {
    pub list: Vec<EventInfo>,
    by_id: HashMap<u64, u16>,
    /// Word index of the id in a SAMPLE body, when samples carry one.
    id_pos: Option<usize>,
    pub endian: Endian,
    /// The flow-tag event (records that precede the samples they tag; not
    /// samples themselves), when the capture had flow context.
    pub tags: Option<TagEvent>,
}

#[derive(Debug, Clone)]
pub struct TagEvent {
    ids: rustc_hash::FxHashSet<u64>,
    pub parse: ParseInfo,
}

impl Events {
    pub fn new(all: &[EventDesc], endian: Endian) -> Events {
        let tags = all
            .iter()
            .find(|d| d.name == crate::flow::TAG_EVENT)
            .map(|d| TagEvent { ids: d.ids.iter().copied().collect(), parse: ParseInfo::new(&d.attr, endian) });
        let descs: Vec<EventDesc> = all.iter().filter(|d| d.name != crate::flow::TAG_EVENT).cloned().collect();
        let descs = &descs[..];
        let list: Vec<EventInfo> = descs
            .iter()
            .map(|d| EventInfo {
                name: if d.name.is_empty() { d.attr.default_name() } else { d.name.clone() },
                attr: d.attr.clone(),
                parse: ParseInfo::new(&d.attr, endian),
                default_period: if d.attr.is_freq() || d.attr.period_or_freq == 0 { 1 } else { d.attr.period_or_freq },
            })
            .collect();
        let mut by_id = HashMap::default();
        for (i, d) in descs.iter().enumerate() {
            for &id in &d.ids {
                by_id.insert(id, i as u16);
            }
        }
        // perf requires the id to sit at the same place in every event's
        // samples; the first event's layout tells where.
        let id_pos = list.first().and_then(|e| {
            let st = e.attr.sample_type;
            if st & sample::IDENTIFIER != 0 {
                Some(0)
            } else if st & sample::ID != 0 {
                Some([sample::IP, sample::TID, sample::TIME, sample::ADDR].iter().filter(|&&b| st & b != 0).count())
            } else {
                None
            }
        });
        Events { list, by_id, id_pos, endian, tags }
    }

    /// True for a flow-tag record (its id is the tag event's).
    pub fn is_tag(&self, body: &[u8]) -> bool {
        let (Some(t), Some(pos)) = (&self.tags, self.id_pos) else { return false };
        body.get(pos * 8..pos * 8 + 8).is_some_and(|b| t.ids.contains(&self.endian.u64(b)))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Event index of a SAMPLE body. With one event, always 0; otherwise by
    /// id (None when the id is unknown).
    pub fn of_sample(&self, body: &[u8]) -> Option<u16> {
        if self.is_tag(body) {
            return None;
        }
        if self.list.len() == 1 {
            return Some(0);
        }
        let pos = self.id_pos? * 8;
        let id = self.endian.u64(body.get(pos..pos + 8)?);
        self.by_id.get(&id).copied()
    }

    /// Event index from a known id.
    pub fn of_id(&self, id: u64) -> Option<u16> {
        if self.list.len() == 1 {
            return Some(0);
        }
        self.by_id.get(&id).copied()
    }

    /// Layout for non-sample records (perf uses the first event's).
    pub fn sideband_parse(&self) -> Option<&ParseInfo> {
        self.list.first().map(|e| &e.parse)
    }
}
