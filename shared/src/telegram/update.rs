//! The parts of a Bot API [`Update`](https://core.telegram.org/bots/api#update) the webhook
//! reads. Every other field (and every other kind of update) is ignored by serde, so a new
//! Bot API version never breaks parsing.
//!
//! The text of a message may carry a one-time token (`/start <token>`), so [`Message`]'s
//! `Debug` never shows it.

use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    /// A new incoming message; absent for every other kind of update (edited messages,
    /// channel posts, callback queries, member updates, …).
    #[serde(default)]
    pub message: Option<Message>,
    /// A new post in a channel the bot is in (only read to burn a connect token posted there).
    #[serde(default)]
    pub channel_post: Option<Message>,
    /// The bot's own membership in a chat changed: in a private chat, `kicked` when the user
    /// blocked the bot and `member` when they unblocked (or started) it.
    #[serde(default)]
    pub my_chat_member: Option<ChatMemberUpdated>,
}

/// A [`ChatMemberUpdated`](https://core.telegram.org/bots/api#chatmemberupdated) (the fields
/// tglink reads).
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMemberUpdated {
    pub chat: Chat,
    /// Absent fields make the update not tglink's (never a refusal of the whole update).
    #[serde(default)]
    pub from: Option<User>,
    #[serde(default)]
    pub new_chat_member: Option<ChatMember>,
}

/// The new membership: `status` is `creator`, `administrator`, `member`, `restricted`, `left`
/// or `kicked`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMember {
    pub status: String,
}

#[derive(Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    /// The sender; absent for messages sent on behalf of a chat.
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("message_id", &self.message_id)
            .field("from", &self.from)
            .field("chat", &self.chat)
            .field("text", &self.text.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Chat {
    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_update_and_ignores_unknown_fields() {
        let raw = r#"{
            "update_id": 10000,
            "message": {
                "message_id": 1365,
                "date": 1441645532,
                "chat": {"id": 1111111, "type": "private", "first_name": "Test", "username": "Test"},
                "from": {"id": 1111111, "is_bot": false, "first_name": "Test", "username": "Test",
                         "language_code": "en", "is_premium": true},
                "text": "/start abc",
                "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
                "some_future_field": {"nested": [1, 2, 3]}
            },
            "another_future_field": true
        }"#;
        let update: Update = serde_json::from_str(raw).unwrap();
        assert_eq!(update.update_id, 10000);
        let message = update.message.unwrap();
        assert_eq!(message.chat.id, 1111111);
        assert!(message.chat.is_private());
        let from = message.from.as_ref().unwrap();
        assert_eq!(from.id, 1111111);
        assert!(!from.is_bot);
        assert_eq!(from.username.as_deref(), Some("Test"));
        assert_eq!(message.text.as_deref(), Some("/start abc"));
        assert!(!format!("{message:?}").contains("/start abc"));
    }

    #[test]
    fn other_kinds_of_update_have_no_message() {
        let raw = r#"{"update_id": 7, "edited_message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "date": 0}}"#;
        let update: Update = serde_json::from_str(raw).unwrap();
        assert!(update.message.is_none());
        let raw = r#"{"update_id": 8, "callback_query": {"id": "x", "from": {"id": 1, "is_bot": false, "first_name": "a"}}}"#;
        assert!(
            serde_json::from_str::<Update>(raw)
                .unwrap()
                .message
                .is_none()
        );
    }

    #[test]
    fn parses_my_chat_member() {
        let raw = r#"{"update_id": 9, "my_chat_member": {
            "chat": {"id": 5, "type": "private", "first_name": "A"},
            "from": {"id": 5, "is_bot": false, "first_name": "A"},
            "date": 1,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": true, "first_name": "B"}},
            "new_chat_member": {"status": "kicked", "until_date": 0, "user": {"id": 1, "is_bot": true, "first_name": "B"}}
        }}"#;
        let update: Update = serde_json::from_str(raw).unwrap();
        let change = update.my_chat_member.unwrap();
        assert!(change.chat.is_private());
        assert_eq!(change.from.unwrap().id, 5);
        assert_eq!(change.new_chat_member.unwrap().status, "kicked");
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        for raw in [
            "{}",
            r#"{"update_id": "1"}"#,
            r#"{"update_id": 1, "message": {"message_id": 1}}"#,
            r#"{"update_id": 1, "message": {"message_id": 1, "chat": {"id": "x", "type": "private"}}}"#,
            "[]",
            "null",
        ] {
            assert!(serde_json::from_str::<Update>(raw).is_err(), "{raw}");
        }
    }
}
