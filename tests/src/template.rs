//! `template.yaml`, read the way the deployment tests need it: each `AWS::Serverless::Function`
//! with its crate, HttpApi routes, the inline IAM statements of its role and the key policy
//! statements naming that role, and a small IAM evaluator (exact actions, `*` globs in
//! resources, `StringEquals`, `StringLike`, `ForAllValues:StringEquals` and
//! `ForAllValues:StringLike` conditions) to decide whether a recorded AWS call would be allowed.
//!
//! CloudFormation short-form tags (`!Ref`, `!Sub`, `!GetAtt`, …) are turned into their long
//! form (`{"Ref": …}`, `{"Fn::Sub": …}`, `{"Fn::GetAtt": [resource, attribute]}`) while parsing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::aws_recorder::{ACCOUNT, AuthzRequest, LEADING_KEYS, REGION};

pub struct Template {
    pub doc: Value,
}

/// One function resource of the template.
#[derive(Debug, Clone)]
pub struct TemplateFunction {
    pub logical_id: String,
    /// The crate directory name (`CodeUri: functions/<name>`).
    pub name: String,
    pub resource: Value,
    /// `(METHOD, /path)` of every `HttpApi` event.
    pub routes: BTreeSet<(String, String)>,
    /// The logical id of its role (`Role: !GetAtt <id>.Arn`).
    pub role_id: String,
    /// The role's inline policy statements, then the statements of every KMS key policy that
    /// names the role as its principal (`!GetAtt <role>.Arn`; their `Resource: "*"` is that
    /// key).
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<Value>,
    pub condition: Option<Value>,
}

/// What the template's intrinsic functions resolve to in a test deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub stack: String,
    pub stage: String,
    pub table: String,
    /// The sealing key's ARN.
    pub key_arn: String,
}

impl Template {
    /// Reads `template.yaml` at the workspace root.
    pub fn load() -> Self {
        let path = crate::workspace_root().join("template.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Self {
        let yaml: serde_norway::Value =
            serde_norway::from_str(text).expect("template.yaml is valid YAML");
        Self {
            doc: yaml_to_json(yaml),
        }
    }

    pub fn resources(&self) -> &Map<String, Value> {
        self.doc["Resources"]
            .as_object()
            .expect("template has Resources")
    }

    pub fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .unwrap_or_else(|| panic!("template has no resource {id}"))
    }

    /// `(logical id, resource)` of every resource of `kind`.
    pub fn of_type(&self, kind: &str) -> Vec<(&str, &Value)> {
        self.resources()
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(id, r)| (id.as_str(), r))
            .collect()
    }

    pub fn functions(&self) -> Vec<TemplateFunction> {
        self.of_type("AWS::Serverless::Function")
            .into_iter()
            .map(|(id, resource)| self.function_of(id, resource))
            .collect()
    }

    /// The function whose crate is `functions/<name>`.
    pub fn function(&self, name: &str) -> TemplateFunction {
        self.functions()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| {
                panic!("template.yaml has no function with CodeUri functions/{name}")
            })
    }

    fn function_of(&self, id: &str, resource: &Value) -> TemplateFunction {
        let props = &resource["Properties"];
        let code_uri = props["CodeUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: CodeUri must be a path"));
        let name = code_uri
            .trim_end_matches('/')
            .strip_prefix("functions/")
            .unwrap_or_else(|| panic!("{id}: CodeUri must be functions/<crate>"))
            .to_owned();
        let mut routes = BTreeSet::new();
        for (event_id, event) in props["Events"].as_object().into_iter().flatten() {
            assert_eq!(
                event["Type"], "HttpApi",
                "{id}.{event_id}: only HttpApi events are expected"
            );
            let p = &event["Properties"];
            assert_eq!(
                p["ApiId"],
                json!({"Ref": "HttpApi"}),
                "{id}.{event_id}: routes belong to the one HttpApi"
            );
            let method = p["Method"].as_str().expect("Method").to_ascii_uppercase();
            let path = p["Path"].as_str().expect("Path").to_owned();
            assert!(
                routes.insert((method, path)),
                "{id}.{event_id}: duplicate route"
            );
        }
        let role_id = match &props["Role"] {
            Value::Object(o) => o
                .get("Fn::GetAtt")
                .and_then(|v| v[0].as_str())
                .filter(|_| o["Fn::GetAtt"][1] == "Arn")
                .map(str::to_owned),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{id}: Role must be !GetAtt <its role>.Arn"));
        let role = self.resource(&role_id);
        assert_eq!(role["Type"], "AWS::IAM::Role", "{role_id} is a role");
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_null(),
            "{role_id}: no managed policies, inline statements only"
        );
        let mut statements = Vec::new();
        for policy in role["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for s in policy["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
            {
                statements.push(Statement::parse(s));
            }
        }
        statements.extend(self.key_statements_for(&role_id));
        TemplateFunction {
            logical_id: id.to_owned(),
            name,
            resource: resource.clone(),
            routes,
            role_id,
            statements,
        }
    }
}

/// Grants the scenario cannot reach (failure paths), each with why it is needed: their
/// "never used" problem is dropped by [`Template::check_scenario`], which requires it to be
/// reported, so that the list cannot go stale.
pub const UNREACHED_GRANTS: &[(&str, &str)] = &[(
    "WebhookRole: grants dynamodb:DeleteItem on CLAIM#update#*",
    "/disconnect releases its update claim when the unlink failed, so Telegram's retry runs at once",
)];

impl Template {
    /// [`TemplateFunction::check_least_privilege`] of every function of `names` against what it
    /// was seen to do in the scenario, less the [`UNREACHED_GRANTS`].
    pub fn check_scenario<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        observed: &BTreeMap<String, Vec<AuthzRequest>>,
        deployment: &Deployment,
    ) -> Vec<String> {
        let mut problems: Vec<String> = names
            .into_iter()
            .flat_map(|name| {
                self.function(name).check_least_privilege(
                    observed.get(name).map_or(&[][..], Vec::as_slice),
                    deployment,
                )
            })
            .collect();
        for (grant, why) in UNREACHED_GRANTS {
            let before = problems.len();
            problems.retain(|p| !p.starts_with(grant));
            if problems.len() == before {
                problems.push(format!(
                    "UNREACHED_GRANTS lists {grant:?} ({why}), which the scenario now uses or the template no longer grants"
                ));
            }
        }
        problems
    }

    /// The statements of every `AWS::KMS::Key` policy whose principal is `role_id`'s ARN, with
    /// `Resource: "*"` (the key itself) as the key's `!GetAtt <key>.Arn`.
    pub fn key_statements_for(&self, role_id: &str) -> Vec<Statement> {
        let role_arn = json!({"Fn::GetAtt": [role_id, "Arn"]});
        let mut out = Vec::new();
        for (key_id, key) in self.of_type("AWS::KMS::Key") {
            for s in key["Properties"]["KeyPolicy"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if !one_or_many(&s["Principal"]["AWS"]).contains(&role_arn) {
                    continue;
                }
                let mut statement = Statement::parse(s);
                assert_eq!(
                    statement.resources,
                    [json!("*")],
                    "{key_id}: a key policy statement's Resource is \"*\" (the key)"
                );
                statement.resources = vec![json!({"Fn::GetAtt": [key_id, "Arn"]})];
                out.push(statement);
            }
        }
        out
    }
}

impl TemplateFunction {
    /// Whether any of the function's statements allows `request`.
    pub fn allows(&self, request: &AuthzRequest, deployment: &Deployment) -> bool {
        self.statements
            .iter()
            .any(|s| s.allows(request, deployment))
    }

    /// The logical id of the log group in `LoggingConfig.LogGroup` (`!Ref <id>`).
    pub fn log_group_id(&self) -> String {
        self.resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "{}: LoggingConfig.LogGroup must be !Ref <its log group>",
                    self.logical_id
                )
            })
            .to_owned()
    }

    /// Holds the role's statements against the authorization requests the function was seen
    /// to make: each request must be allowed, and each action granted must have been used
    /// (least privilege). The `Logs` statement is checked separately: log stream writes to the
    /// function's own log group only. Returns the problems found.
    pub fn check_least_privilege(
        &self,
        observed: &[AuthzRequest],
        deployment: &Deployment,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let log_group = json!({"Fn::GetAtt": [self.log_group_id(), "Arn"]});
        let (logs, others): (Vec<&Statement>, Vec<&Statement>) = self
            .statements
            .iter()
            .partition(|s| s.actions.iter().any(|a| a.starts_with("logs:")));
        match logs.as_slice() {
            [s] if s.effect == "Allow"
                && s.condition.is_none()
                && s.actions == ["logs:CreateLogStream", "logs:PutLogEvents"]
                && s.resources == [log_group.clone()] => {}
            _ => problems.push(format!(
                "{}: expected exactly one logs statement: CreateLogStream and PutLogEvents on {log_group}",
                self.role_id
            )),
        }
        for s in &others {
            if s.effect != "Allow" {
                problems.push(format!(
                    "{}: only Allow statements are expected",
                    self.role_id
                ));
            }
            for action in &s.actions {
                if action.contains('*') {
                    problems.push(format!("{}: wildcard action {action}", self.role_id));
                }
                if !observed
                    .iter()
                    .any(|r| &r.action == action && s.allows(r, deployment))
                {
                    problems.push(format!(
                        "{}: grants {action} ({}), which {} never used in the scenario",
                        self.role_id,
                        s.sid.as_deref().unwrap_or("no Sid"),
                        self.name
                    ));
                }
            }
        }
        problems.extend(self.check_scoped_grants(&others, observed, deployment));
        let mut denied: BTreeSet<String> = BTreeSet::new();
        for request in observed {
            if !others.iter().any(|s| s.allows(request, deployment)) {
                denied.insert(format!(
                    "{}: {} on {} with {:?} is not allowed by {}",
                    self.name, request.action, request.resource, request.context, self.role_id
                ));
            }
        }
        problems.extend(denied);
        problems
    }
}

impl TemplateFunction {
    /// Least privilege below the action: every DynamoDB item action is limited by
    /// `dynamodb:LeadingKeys` and each (action, key pattern) it grants was used; every SSM
    /// parameter it grants was read; every DynamoDB request carried its leading key.
    fn check_scoped_grants(
        &self,
        statements: &[&Statement],
        observed: &[AuthzRequest],
        deployment: &Deployment,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for s in statements {
            let sid = s.sid.as_deref().unwrap_or("no Sid");
            if s.actions.iter().any(|a| a.starts_with("dynamodb:")) {
                let patterns = s.leading_key_patterns();
                if patterns.is_empty() {
                    problems.push(format!(
                        "{}: {sid} grants DynamoDB actions without a ForAllValues:StringLike dynamodb:LeadingKeys condition",
                        self.role_id
                    ));
                }
                for action in &s.actions {
                    for pattern in &patterns {
                        let used = observed.iter().any(|r| {
                            &r.action == action
                                && r.context
                                    .get(LEADING_KEYS)
                                    .is_some_and(|pk| glob_match(pattern, pk))
                                && s.allows(r, deployment)
                        });
                        if !used {
                            problems.push(format!(
                                "{}: grants {action} on {pattern} ({sid}), which {} never used in the scenario",
                                self.role_id, self.name
                            ));
                        }
                    }
                }
            }
            if s.actions.iter().any(|a| a.starts_with("ssm:")) {
                for resource in &s.resources {
                    let arn = deployment.resolve(resource);
                    if !observed
                        .iter()
                        .any(|r| r.action.starts_with("ssm:") && glob_match(&arn, &r.resource))
                    {
                        problems.push(format!(
                            "{}: grants ssm on {arn} ({sid}), which {} never read in the scenario",
                            self.role_id, self.name
                        ));
                    }
                }
            }
        }
        for r in observed {
            if r.action.starts_with("dynamodb:") && !r.context.contains_key(LEADING_KEYS) {
                problems.push(format!(
                    "{}: {} without a leading key (the recorder could not tell its pk)",
                    self.name, r.action
                ));
            }
        }
        problems
    }
}

fn one_or_many(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

impl Statement {
    fn parse(s: &Value) -> Self {
        assert!(s["NotAction"].is_null() && s["NotResource"].is_null());
        Self {
            sid: s["Sid"].as_str().map(str::to_owned),
            effect: s["Effect"].as_str().unwrap_or_default().to_owned(),
            actions: one_or_many(&s["Action"])
                .iter()
                .map(|a| a.as_str().expect("actions are strings").to_owned())
                .collect(),
            resources: one_or_many(&s["Resource"]),
            condition: (!s["Condition"].is_null()).then(|| s["Condition"].clone()),
        }
    }

    /// Whether this statement allows `request` in `deployment`. Actions must be spelled out
    /// (no wildcards); see [`operator_of`] for the conditions understood.
    pub fn allows(&self, request: &AuthzRequest, deployment: &Deployment) -> bool {
        if self.effect != "Allow" || !self.actions.iter().any(|a| a == &request.action) {
            return false;
        }
        let resource_ok = self
            .resources
            .iter()
            .any(|r| glob_match(&deployment.resolve(r), &request.resource));
        resource_ok && self.conditions_hold(&request.context)
    }

    fn conditions_hold(&self, context: &BTreeMap<String, String>) -> bool {
        let Some(condition) = &self.condition else {
            return true;
        };
        let condition = condition.as_object().expect("Condition is a map");
        condition.iter().all(|(operator, keys)| {
            let (for_all_values, test) = operator_of(operator);
            keys.as_object()
                .expect("condition keys")
                .iter()
                .all(|(key, expected)| {
                    let expected: Vec<String> = one_or_many(expected)
                        .iter()
                        .map(|e| e.as_str().expect("condition values are strings").to_owned())
                        .collect();
                    match context.get(key) {
                        // IAM: a ForAllValues condition holds when the request has no value
                        // for the key (the empty set); a single-valued one fails.
                        None => for_all_values,
                        Some(actual) => expected.iter().any(|e| test(e, actual)),
                    }
                })
        })
    }

    /// The patterns of a `ForAllValues:StringLike` condition on `dynamodb:LeadingKeys`.
    pub fn leading_key_patterns(&self) -> Vec<String> {
        let Some(condition) = &self.condition else {
            return Vec::new();
        };
        one_or_many(&condition["ForAllValues:StringLike"][LEADING_KEYS])
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

/// A condition operator: whether it is `ForAllValues:` and how one value is compared. Only the
/// operators the template uses are understood (anything else panics, so that a test never
/// passes on a condition it cannot evaluate).
fn operator_of(operator: &str) -> (bool, fn(&str, &str) -> bool) {
    let (for_all_values, op) = match operator.strip_prefix("ForAllValues:") {
        Some(op) => (true, op),
        None => (false, operator),
    };
    let test: fn(&str, &str) -> bool = match op {
        "StringEquals" => |expected, actual| expected == actual,
        "StringLike" => glob_match,
        other => {
            panic!("the test's IAM evaluator does not understand the condition operator {other}")
        }
    };
    (for_all_values, test)
}

impl Deployment {
    /// A resource (string, `!Sub`, `!GetAtt`) as an ARN in this deployment.
    pub fn resolve(&self, value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Object(o) if o.contains_key("Fn::Sub") => {
                let template = o["Fn::Sub"].as_str().expect("!Sub of a plain string");
                self.substitute(template)
            }
            Value::Object(o) if o.contains_key("Fn::GetAtt") => {
                let att = &o["Fn::GetAtt"];
                let (resource, attribute) = (att[0].as_str(), att[1].as_str());
                match (resource, attribute) {
                    (Some("Table"), Some("Arn")) => crate::aws_recorder::table_arn(&self.table),
                    (Some("SealingKey"), Some("Arn")) => self.key_arn.clone(),
                    _ => panic!("the test cannot resolve {value}"),
                }
            }
            other => panic!("the test cannot resolve resource {other}"),
        }
    }

    /// `${AWS::Partition}`, `${AWS::Region}`, `${AWS::AccountId}`, `${AWS::StackName}`,
    /// `${Stage}`.
    pub fn substitute(&self, template: &str) -> String {
        let mut out = template
            .replace("${AWS::Partition}", "aws")
            .replace("${AWS::Region}", REGION)
            .replace("${AWS::AccountId}", ACCOUNT)
            .replace("${AWS::StackName}", &self.stack)
            .replace("${Stage}", &self.stage);
        if let Some(start) = out.find("${") {
            let rest = out.split_off(start);
            panic!("the test cannot substitute {rest} in {template}");
        }
        out
    }
}

/// IAM-style matching: `*` any run of characters, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// YAML (with CloudFormation tags) → JSON with long-form intrinsic functions.
pub fn yaml_to_json(value: serde_norway::Value) -> Value {
    to_json(value)
}

fn to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        other => panic!("unsupported mapping key {other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = to_json(tagged.value);
            match tag {
                "Ref" => json!({ "Ref": inner }),
                "Condition" => json!({ "Condition": inner }),
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => {
                            let (resource, attribute) = s.split_once('.').unwrap_or_else(|| {
                                panic!("!GetAtt {s}: expected Resource.Attribute")
                            });
                            json!([resource, attribute])
                        }
                        list => list,
                    };
                    json!({ "Fn::GetAtt": parts })
                }
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_tags_become_long_form() {
        let t = Template::parse(
            "a: !Ref X\nb: !GetAtt T.Arn\nc: !Sub 'x-${Stage}'\nd: [!Ref Y]\ne: !Join ['', [a, b]]\n",
        );
        assert_eq!(t.doc["a"], json!({"Ref": "X"}));
        assert_eq!(t.doc["b"], json!({"Fn::GetAtt": ["T", "Arn"]}));
        assert_eq!(t.doc["c"], json!({"Fn::Sub": "x-${Stage}"}));
        assert_eq!(t.doc["d"], json!([{"Ref": "Y"}]));
        assert_eq!(t.doc["e"], json!({"Fn::Join": ["", ["a", "b"]]}));
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "arn:x:parameter/tglink/p/*",
            "arn:x:parameter/tglink/p/A"
        ));
        assert!(!glob_match(
            "arn:x:parameter/tglink/p/*",
            "arn:x:parameter/tglink/q/A"
        ));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn conditions_are_evaluated() {
        let s = Statement::parse(&json!({
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": "arn:k",
            "Condition": {"StringEquals": {"kms:EncryptionContext:service": "tglink"}},
        }));
        let d = Deployment {
            stack: "s".into(),
            stage: "p".into(),
            table: "t".into(),
            key_arn: "arn:k".into(),
        };
        let mut r = AuthzRequest {
            action: "kms:Decrypt".into(),
            resource: "arn:k".into(),
            context: BTreeMap::new(),
        };
        assert!(
            !s.allows(&r, &d),
            "a missing context key fails the condition"
        );
        r.context
            .insert("kms:EncryptionContext:service".into(), "tglink".into());
        assert!(s.allows(&r, &d));
        r.action = "kms:Encrypt".into();
        assert!(!s.allows(&r, &d));
    }

    #[test]
    fn leading_keys_conditions_are_evaluated() {
        let s = Statement::parse(&json!({
            "Effect": "Allow",
            "Action": ["dynamodb:UpdateItem"],
            "Resource": "arn:t",
            "Condition": {"ForAllValues:StringLike": {LEADING_KEYS: ["VAULT#*", "SESSION#*"]}},
        }));
        let d = Deployment {
            stack: "s".into(),
            stage: "p".into(),
            table: "t".into(),
            key_arn: "arn:k".into(),
        };
        let with = |pk: &str| AuthzRequest {
            action: "dynamodb:UpdateItem".into(),
            resource: "arn:t".into(),
            context: BTreeMap::from([(LEADING_KEYS.to_owned(), pk.to_owned())]),
        };
        assert!(s.allows(&with("VAULT#user#1"), &d));
        assert!(s.allows(&with("SESSION#h"), &d));
        assert!(!s.allows(&with("USER#user#1"), &d));
        assert!(!s.allows(&with("TGVAULT#1"), &d), "patterns are anchored");
        let mut none = with("x");
        none.context.clear();
        assert!(
            s.allows(&none, &d),
            "ForAllValues holds on no value, as in IAM"
        );
        assert_eq!(s.leading_key_patterns(), ["VAULT#*", "SESSION#*"]);
        let like = Statement::parse(&json!({
            "Effect": "Allow",
            "Action": ["dynamodb:UpdateItem"],
            "Resource": "arn:t",
            "Condition": {"StringLike": {LEADING_KEYS: "VAULT#*"}},
        }));
        assert!(like.allows(&with("VAULT#1"), &d));
        assert!(
            !like.allows(&none, &d),
            "a single-valued operator needs the key"
        );
    }
}
