//! A node's attributes, read by name with their type checked.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto};
use crate::tensor::{decode, Const};

/// The attributes of one node.
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    /// The attributes of `node`.
    pub fn of(node: &'a NodeProto) -> Attrs<'a> {
        Attrs { node }
    }

    fn get(&self, name: &str, ty: AttributeType) -> Result<Option<&'a AttributeProto>> {
        let Some(a) = self
            .node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
        else {
            return Ok(None);
        };
        if a.ref_attr_name.is_some() {
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("attribute `{name}` refers to a function's attribute"),
            ));
        }
        // Writers may leave `type` unset (IR < 4); then the field present decides.
        match a.r#type {
            Some(t) if t != ty as i32 => Err(OnnxError::new(
                ErrorKind::Graph,
                format!(
                    "attribute `{name}` is {} where the op takes {}",
                    AttributeType::try_from(t)
                        .map(|t| t.as_str_name())
                        .unwrap_or("an unknown type"),
                    ty.as_str_name()
                ),
            )),
            _ => Ok(Some(a)),
        }
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self
            .get(name, AttributeType::Int)?
            .and_then(|a| a.i)
            .unwrap_or(default))
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self
            .get(name, AttributeType::Float)?
            .and_then(|a| a.f)
            .unwrap_or(default))
    }

    /// A list of integers, or `None` when absent.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    /// A string attribute (UTF-8), or `default`.
    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(
            match self
                .get(name, AttributeType::String)?
                .and_then(|a| a.s.as_ref())
            {
                Some(s) => String::from_utf8_lossy(s).into_owned(),
                None => default.to_string(),
            },
        )
    }

    /// A list of strings, or `None` when absent.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        Ok(self.get(name, AttributeType::Strings)?.map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }))
    }

    /// A tensor attribute, decoded, or `None` when absent.
    pub fn tensor(&self, name: &str) -> Result<Option<Const>> {
        match self
            .get(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref())
        {
            Some(t) => decode(t).map(Some),
            None => Ok(None),
        }
    }

    /// Whether an attribute of this name is present at all.
    pub fn has(&self, name: &str) -> bool {
        self.node
            .attribute
            .iter()
            .any(|a| a.name.as_deref() == Some(name))
    }

    /// Names of the attributes present, for error messages.
    pub fn names(&self) -> Vec<&'a str> {
        self.node
            .attribute
            .iter()
            .filter_map(|a| a.name.as_deref())
            .collect()
    }
}
