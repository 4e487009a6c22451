//! The encryption settings of the regions' backends (`sse_c`, `sse_s3`,
//! `kms_key_ids` of a `kind = "s3"` region), checked at load.

use std::collections::BTreeMap;
use std::ops::Range;

use indexmap::IndexMap;
use toml::Spanned;

use super::BackendConfig;

/// Every problem with the regions' KMS key ids: an empty or blank id, an id
/// listed twice, an id listed by two regions (a key belongs to one region:
/// an object placed in one must never be encrypted with another's key).
pub(super) fn problems(
    regions: &IndexMap<String, Spanned<BackendConfig>>,
) -> Vec<(Option<Range<usize>>, String)> {
    let mut out = Vec::new();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, b) in regions {
        let BackendConfig::S3 { kms_key_ids, .. } = b.get_ref() else {
            continue;
        };
        for key in kms_key_ids {
            if key.trim().is_empty() || key.trim() != key {
                out.push((
                    Some(b.span()),
                    format!("region {id}: kms_key_ids has an empty id or one with spaces around it: {key:?}"),
                ));
                continue;
            }
            match owner.insert(key, id) {
                Some(other) if other == id => out.push((
                    Some(b.span()),
                    format!("region {id}: kms_key_ids lists {key:?} twice"),
                )),
                Some(other) => out.push((
                    Some(b.span()),
                    format!(
                        "regions {other} and {id} both list the KMS key {key:?}: a KMS key belongs to one region (each region's objects are encrypted with its own keys)"
                    ),
                )),
                None => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn parse(regions: &str) -> Result<Config, String> {
        let src = format!("policy = \"p.toml\"\ntenants = \"t.toml\"\n{regions}");
        Config::parse(&src, Path::new("residency.toml")).map_err(|e| e.to_string())
    }

    const S3: &str = "kind = \"s3\"\nbucket = \"bkt\"\nregion = \"eu-west-1\"\naccess_key = \"a\"\nsecret_key = \"s\"\n";

    #[test]
    fn kms_keys_default_to_none_and_sse_c_to_on() {
        let c = parse(&format!("[regions.eu]\n{S3}")).unwrap();
        let Some((
            _,
            super::BackendConfig::S3 {
                sse_c,
                sse_s3,
                kms_key_ids,
                ..
            },
        )) = c.regions.first()
        else {
            panic!("no s3 region");
        };
        assert!(*sse_c && !*sse_s3 && kms_key_ids.is_empty());
    }

    #[test]
    fn a_kms_key_belongs_to_one_region_and_is_named_once() {
        let ok = parse(&format!(
            "[regions.eu]\n{S3}kms_key_ids = [\"eu-1\", \"eu-2\"]\nsse_s3 = true\n[regions.us]\n{S3}kms_key_ids = [\"us-1\"]\n"
        ));
        assert!(ok.is_ok(), "{ok:?}");
        let shared = parse(&format!(
            "[regions.eu]\n{S3}kms_key_ids = [\"k\"]\n[regions.us]\n{S3}kms_key_ids = [\"k\"]\n"
        ))
        .unwrap_err();
        assert!(
            shared.contains("regions eu and us both list the KMS key \"k\""),
            "{shared}"
        );
        assert!(shared.contains("residency.toml:"), "{shared}");
        let twice =
            parse(&format!("[regions.eu]\n{S3}kms_key_ids = [\"k\", \"k\"]\n")).unwrap_err();
        assert!(
            twice.contains("region eu: kms_key_ids lists \"k\" twice"),
            "{twice}"
        );
        let blank = parse(&format!("[regions.eu]\n{S3}kms_key_ids = [\" \"]\n")).unwrap_err();
        assert!(blank.contains("empty id"), "{blank}");
    }

    #[test]
    fn a_directory_region_has_no_encryption_settings() {
        let e = parse("[regions.eu]\nkind = \"dir\"\npath = \"d\"\nkms_key_ids = [\"k\"]\n")
            .unwrap_err();
        assert!(e.contains("kms_key_ids"), "{e}");
    }
}
