//! Reading a mapping of a standards document field by field, so that every field the import
//! did not use is reported with its path instead of being dropped silently.

use crate::standards::Unmapped;
use crate::standards::yaml::Yaml;

/// The fields of one mapping at `path`, with which ones were read.
pub struct Fields<'y> {
    entries: &'y [(String, Yaml)],
    path: String,
    used: Vec<bool>,
    /// `customProperties` entries, and which were read.
    customs: Vec<(String, &'y Yaml)>,
    customs_used: Vec<bool>,
}

impl<'y> Fields<'y> {
    /// The fields of `value` (nothing when it is not a mapping).
    pub fn new(value: &'y Yaml, path: &str) -> Fields<'y> {
        let entries: &[(String, Yaml)] = match value {
            Yaml::Map(entries) => entries,
            _ => &[],
        };
        let mut customs = Vec::new();
        if let Some((_, Yaml::Seq(items))) = entries.iter().find(|(k, _)| k == "customProperties") {
            for item in items {
                let name = item.get("property").and_then(Yaml::scalar_text).unwrap_or_default();
                customs.push((name, item.get("value").unwrap_or(&Yaml::Null)));
            }
        }
        let used = entries.iter().map(|(k, _)| k == "customProperties").collect();
        let customs_used = vec![false; customs.len()];
        Fields { entries, path: path.to_owned(), used, customs, customs_used }
    }

    /// The path of field `key`.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// Field `key` (absent when null), marked as read.
    pub fn take(&mut self, key: &str) -> Option<&'y Yaml> {
        let entries: &'y [(String, Yaml)] = self.entries;
        let at = entries.iter().position(|(k, _)| k == key)?;
        self.used[at] = true;
        match &entries[at].1 {
            Yaml::Null => None,
            value => Some(value),
        }
    }

    /// Field `key` as text (numbers and booleans in their plain spelling).
    pub fn text(&mut self, key: &str) -> Option<String> {
        self.take(key).and_then(Yaml::scalar_text)
    }

    /// The items of list field `key`, each with its path.
    pub fn items(&mut self, key: &str) -> Vec<(String, &'y Yaml)> {
        let path = self.path_of(key);
        match self.take(key) {
            Some(Yaml::Seq(items)) => items.iter().enumerate().map(|(i, item)| (format!("{path}[{i}]"), item)).collect(),
            _ => Vec::new(),
        }
    }

    /// The value of custom property `name`, marked as read.
    pub fn custom(&mut self, name: &str) -> Option<&'y Yaml> {
        let at = self.customs.iter().position(|(n, _)| n == name)?;
        self.customs_used[at] = true;
        Some(self.customs[at].1)
    }

    /// Marks every field as read (the whole mapping was mapped, or reported as one).
    pub fn take_all(&mut self) {
        self.used.iter_mut().for_each(|u| *u = true);
        self.customs_used.iter_mut().for_each(|u| *u = true);
    }

    /// Reports every field that was not read.
    pub fn finish(self, report: &mut Vec<Unmapped>) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                report.push(Unmapped::new(self.path_of(key), format!("`{key}` has no Meshwork equivalent")));
            }
        }
        for (i, ((name, _), used)) in self.customs.iter().zip(&self.customs_used).enumerate() {
            if !used {
                let path = format!("{}[{i}]", self.path_of("customProperties"));
                report.push(Unmapped::new(path, format!("custom property `{name}` has no Meshwork equivalent")));
            }
        }
    }
}
