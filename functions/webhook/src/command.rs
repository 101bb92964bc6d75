//! Bot commands in a message text: `/start [payload]`, `/status`, `/disconnect`, each also
//! as `/<command>@<bot_username>` (how Telegram writes commands addressed to one bot).

/// A command this bot answers. The `/start` payload is raw text (possibly a token): it is
/// never logged and `Debug` does not show it.
#[derive(PartialEq, Eq)]
pub enum Command<'t> {
    Start(Option<&'t str>),
    Status,
    Disconnect,
}

impl std::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start(None) => f.write_str("Start"),
            Self::Start(Some(_)) => f.write_str("Start(<payload>)"),
            Self::Status => f.write_str("Status"),
            Self::Disconnect => f.write_str("Disconnect"),
        }
    }
}

impl<'t> Command<'t> {
    /// The command of `text`, or `None` for ordinary text, other commands and commands
    /// addressed to another bot. Command names are matched case-insensitively, like bot
    /// usernames.
    pub fn parse(text: &'t str, bot_username: &str) -> Option<Self> {
        let text = text.trim();
        let (head, rest) = match text.split_once(char::is_whitespace) {
            Some((head, rest)) => (head, rest.trim()),
            None => (text, ""),
        };
        let name = head.strip_prefix('/')?;
        let name = match name.split_once('@') {
            Some((name, bot)) if bot.eq_ignore_ascii_case(bot_username) => name,
            Some(_) => return None,
            None => name,
        };
        if name.eq_ignore_ascii_case("start") {
            Some(Self::Start((!rest.is_empty()).then_some(rest)))
        } else if name.eq_ignore_ascii_case("status") {
            Some(Self::Status)
        } else if name.eq_ignore_ascii_case("disconnect") {
            Some(Self::Disconnect)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "tglink_dev_bot";

    #[test]
    fn start_with_and_without_payload() {
        assert_eq!(
            Command::parse("/start abc", BOT),
            Some(Command::Start(Some("abc")))
        );
        assert_eq!(
            Command::parse("/start@tglink_dev_bot abc", BOT),
            Some(Command::Start(Some("abc")))
        );
        assert_eq!(
            Command::parse("/start@TGLINK_Dev_Bot  abc \n", BOT),
            Some(Command::Start(Some("abc")))
        );
        assert_eq!(Command::parse("/start", BOT), Some(Command::Start(None)));
        assert_eq!(Command::parse("/start   ", BOT), Some(Command::Start(None)));
        assert_eq!(
            Command::parse("/START\tx y", BOT),
            Some(Command::Start(Some("x y")))
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(Command::parse("/status", BOT), Some(Command::Status));
        assert_eq!(
            Command::parse("/status@tglink_dev_bot", BOT),
            Some(Command::Status)
        );
        assert_eq!(
            Command::parse("/disconnect now", BOT),
            Some(Command::Disconnect)
        );
    }

    #[test]
    fn not_ours() {
        for text in [
            "",
            "start abc",
            "hello /start abc",
            "/",
            "/help",
            "/starter abc",
            "/start@other_bot abc",
            "/status@other_bot",
            "/start@ abc",
        ] {
            assert_eq!(Command::parse(text, BOT), None, "{text:?}");
        }
    }

    #[test]
    fn debug_hides_the_payload() {
        let cmd = Command::parse("/start secret-token", BOT).unwrap();
        assert!(!format!("{cmd:?}").contains("secret-token"));
    }
}
