//! Fragmented MP4 (ISO BMFF) for one H.264 video track, built from `mp4-atom`'s typed boxes.
//!
//! A file is an init segment (`ftyp` + `moov` with an `avc1` sample entry and `mvex`) followed by
//! media segments (`moof` + `mdat`). Each segment is self-contained and appended whole, so a
//! file cut anywhere after a segment (a crash, `kill -9`) plays up to that segment. Every
//! sample carries its own decode time (`tfdt` per fragment plus per-sample durations), which is
//! what makes a variable frame rate exact: a screen idle for a minute is one long sample.

use mp4_atom::{
    Avc1, Avcc, Codec, Colr, Dinf, Dref, Encode, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof,
    Moov, Mvex, Mvhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd,
};

/// Media time units per second (the MPEG convention; 1/90000 s resolves any frame rate).
pub const TIMESCALE: u32 = 90_000;

/// Sample flags: a sync sample that depends on no other.
const SYNC: u32 = 0x0200_0000;
/// Sample flags: depends on others, not a sync sample.
const NON_SYNC: u32 = 0x0101_0000;

/// An MP4 box could not be encoded (a malformed parameter set or an oversized sample).
#[derive(Debug, thiserror::Error)]
#[error("MP4: {0}")]
pub struct Mp4Error(String);

fn err(e: impl std::fmt::Display) -> Mp4Error {
    Mp4Error(e.to_string())
}

/// One video sample ready for a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode (= presentation) time in [`TIMESCALE`] units from the start of the file.
    pub time: u64,
    /// How long the picture shows, in [`TIMESCALE`] units.
    pub duration: u32,
    /// An IDR picture.
    pub key: bool,
    /// The access unit as 4-byte-length-prefixed NAL units (see [`annexb_to_sample`]).
    pub data: Vec<u8>,
}

/// An H.264 access unit split for MP4: the sample data (length-prefixed NAL units, without the
/// parameter sets, which live in the sample entry) and the SPS and PPS if it carried them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SplitAccessUnit {
    /// Length-prefixed NAL units.
    pub data: Vec<u8>,
    /// The sequence parameter set NAL unit, if present.
    pub sps: Option<Vec<u8>>,
    /// The picture parameter set NAL unit, if present.
    pub pps: Option<Vec<u8>>,
}

/// Convert an Annex B access unit into MP4 sample form.
pub fn annexb_to_sample(annexb: &[u8]) -> SplitAccessUnit {
    let mut out = SplitAccessUnit::default();
    for nal in crate::video::nal_units(annexb) {
        match nal[0] & 0x1f {
            7 => out.sps = Some(nal.to_vec()),
            8 => out.pps = Some(nal.to_vec()),
            // Access unit delimiters carry nothing MP4 needs.
            9 => {}
            _ => {
                out.data
                    .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                out.data.extend_from_slice(nal);
            }
        }
    }
    out
}

/// The init segment: `ftyp` and a `moov` describing one `width x height` H.264 track (full-range
/// BT.601 colour, as the encoder signals in its VUI).
pub fn init_segment(width: u16, height: u16, sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, Mp4Error> {
    let ftyp = Ftyp {
        major_brand: b"isom".into(),
        minor_version: 512,
        compatible_brands: vec![
            b"isom".into(),
            b"iso6".into(),
            b"avc1".into(),
            b"mp41".into(),
        ],
    };
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Visual::default()
        },
        avcc: Avcc::new(sps, pps).map_err(err)?,
        colr: Some(Colr::Nclx {
            colour_primaries: 6,
            transfer_characteristics: 6,
            matrix_coefficients: 6,
            full_range_flag: true,
        }),
        ..Avc1::default()
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: 2,
            ..Mvhd::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: 1,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: 0,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: 1,
                enabled: true,
                in_movie: true,
                width: width.into(),
                height: height.into(),
                ..Tkhd::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    language: "und".into(),
                    ..Mdhd::default()
                },
                hdlr: Hdlr {
                    handler: b"vide".into(),
                    name: "deskd screen".into(),
                },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![Url::default().into()],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![Codec::Avc1(avc1)],
                        },
                        stco: Some(Stco::default()),
                        ..Stbl::default()
                    },
                    ..Minf::default()
                },
            },
            ..Trak::default()
        }],
        ..Moov::default()
    };
    let mut buf = Vec::new();
    ftyp.encode(&mut buf).map_err(err)?;
    moov.encode(&mut buf).map_err(err)?;
    Ok(buf)
}

/// One media segment (`moof` + `mdat`) holding `samples` (non-empty, in time order, each
/// starting where the one before ended or later).
pub fn media_segment(sequence: u32, samples: &[Sample]) -> Result<Vec<u8>, Mp4Error> {
    let first = samples
        .first()
        .ok_or_else(|| Mp4Error("empty fragment".into()))?;
    let entries = samples
        .iter()
        .map(|s| {
            Ok(TrunEntry {
                duration: Some(s.duration),
                size: Some(u32::try_from(s.data.len()).map_err(err)?),
                flags: Some(if s.key { SYNC } else { NON_SYNC }),
                cts: None,
            })
        })
        .collect::<Result<Vec<_>, Mp4Error>>()?;
    let moof = |data_offset: i32| Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: 1,
                default_base_is_moof: true,
                ..Tfhd::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: first.time,
            }),
            trun: vec![Trun {
                data_offset: Some(data_offset),
                samples: TrunSamples::Explicit(entries.clone()),
            }],
            ..Traf::default()
        }],
    };
    // The data offset counts from the start of the moof to the first sample byte, past the
    // mdat header; the moof's size does not depend on the offset's value.
    let mut probe = Vec::new();
    moof(0).encode(&mut probe).map_err(err)?;
    let offset = i32::try_from(probe.len() + 8).map_err(err)?;
    let mut buf = Vec::new();
    moof(offset).encode(&mut buf).map_err(err)?;
    let mdat = Mdat {
        data: samples
            .iter()
            .flat_map(|s| s.data.iter().copied())
            .collect(),
    };
    mdat.encode(&mut buf).map_err(err)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    #[test]
    fn access_unit_split() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9, 9, 9,
        ];
        let s = annexb_to_sample(&au);
        assert_eq!(s.sps.as_deref(), Some(&[0x67, 1, 2][..]));
        assert_eq!(s.pps.as_deref(), Some(&[0x68, 3][..]));
        assert_eq!(s.data, [0, 0, 0, 4, 0x65, 9, 9, 9]);
    }

    #[test]
    fn segment_offsets_point_at_sample_data() {
        let samples = [
            Sample {
                time: 9000,
                duration: 3000,
                key: true,
                data: vec![0, 0, 0, 2, 0x65, 1],
            },
            Sample {
                time: 12000,
                duration: 90_000,
                key: false,
                data: vec![0, 0, 0, 1, 0x41],
            },
        ];
        let seg = media_segment(7, &samples).unwrap();
        let mut cur = std::io::Cursor::new(&seg);
        let Any::Moof(moof) = Any::decode(&mut cur).unwrap() else {
            panic!("not a moof")
        };
        let traf = &moof.traf[0];
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 9000);
        let off = traf.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&seg[off..], &[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41]);
        assert_eq!(&seg[off - 4..off], b"mdat");
        assert!(media_segment(1, &[]).is_err());
    }
}
