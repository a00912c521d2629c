//! The words on the pages, in English, Spanish and Japanese (the tutorial's
//! languages), and how a request picks one: `ui_locales` first (the app's wish,
//! OpenID Connect Core §3.1.2.1), then `Accept-Language`, then English.

/// Every text a page shows; each field is named for the text it holds.
#[allow(missing_docs)]
#[derive(Debug)]
pub struct Text {
    /// The `lang` attribute.
    pub lang: &'static str,
    pub sign_in_title: &'static str,
    pub sign_in_to: &'static str,
    pub username_or_email: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub invalid_credentials: &'static str,
    /// `{minutes}` is replaced.
    pub too_many_attempts: &'static str,
    pub consent_title: &'static str,
    /// `{app}` is replaced.
    pub consent_intro: &'static str,
    pub consent_permissions: &'static str,
    /// In place of the list, for a request without scopes.
    pub consent_no_permissions: &'static str,
    /// `{host}` is replaced.
    pub consent_redirect: &'static str,
    pub consent_signed_in_as: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    pub third_party_note: &'static str,
    /// Said of an app that registered itself: nobody checked who made it.
    pub unverified_note: &'static str,
    /// Where an app described by a metadata document publishes it ("{host}").
    pub document_note: &'static str,
    pub homepage: &'static str,
    pub privacy_policy: &'static str,
    pub terms: &'static str,
    pub account_title: &'static str,
    pub connected_apps: &'static str,
    pub no_connected_apps: &'static str,
    pub disconnect: &'static str,
    /// What Disconnect does to access already given.
    pub disconnect_note: &'static str,
    /// A badge beside an app that registered itself.
    pub not_verified: &'static str,
    /// `{date}` is replaced.
    pub app_added_by_operator: &'static str,
    /// `{date}` is replaced.
    pub app_registered_itself: &'static str,
    /// `{host}` and `{date}` are replaced.
    pub app_describes_itself: &'static str,
    /// `{places}` is replaced.
    pub app_sends_back: &'static str,
    /// `{when}` is replaced.
    pub app_last_used: &'static str,
    pub app_never_used: &'static str,
    pub sign_out: &'static str,
    pub signed_out: &'static str,
    pub sign_out_title: &'static str,
    pub sign_out_asked_by: &'static str,
    pub sign_out_question: &'static str,
    pub error_title: &'static str,
    /// Under every error: what to do next.
    pub error_next: &'static str,
    /// The link to the home page.
    pub home: &'static str,
    pub home_title: &'static str,
    pub home_intro: &'static str,
    pub home_account: &'static str,
    pub home_developers: &'static str,
    pub not_found_title: &'static str,
    pub not_found: &'static str,
    /// A form's address visited, or sent with the wrong method.
    pub wrong_method: &'static str,
    pub form_expired: &'static str,
    /// A sign-in page's form sent late or twice.
    pub sign_in_again: &'static str,
    /// Above a consent page shown again: nothing was decided.
    pub consent_again: &'static str,
    /// A decision sent again once it was made.
    pub consent_made: &'static str,
    /// `{app}` is replaced.
    pub continue_to_app: &'static str,
    pub scope_openid: &'static str,
    pub scope_profile: &'static str,
    pub scope_email: &'static str,
    pub scope_offline_access: &'static str,
    /// `{provider}` is replaced.
    pub continue_with: &'static str,
    /// Between the providers' buttons and the password form.
    pub or_password: &'static str,
    pub upstream_failed_title: &'static str,
    pub upstream_no_sign_in: &'static str,
    /// `{provider}` is replaced (and in the next ones).
    pub upstream_refused: &'static str,
    pub upstream_unreachable: &'static str,
    pub upstream_bad_answer: &'static str,
    pub upstream_not_admitted: &'static str,
    /// `{domains}` is replaced too.
    pub upstream_not_admitted_domains: &'static str,
    pub upstream_email_taken: &'static str,
    pub upstream_link_taken: &'static str,
    /// `{providers}` is replaced.
    pub passwords_off: &'static str,
    pub try_again: &'static str,
    pub sign_in_methods: &'static str,
    /// `{provider}` is replaced.
    pub link_with: &'static str,
    pub unlink: &'static str,
    pub last_way_in: &'static str,
}

/// English.
pub const EN: Text = Text {
    lang: "en",
    sign_in_title: "Sign in",
    sign_in_to: "Sign in to continue to",
    username_or_email: "Username or email",
    password: "Password",
    sign_in: "Sign in",
    invalid_credentials: "The username, email or password is not right.",
    too_many_attempts: "Too many failed attempts. Try again in {minutes} minutes.",
    consent_title: "Allow access?",
    consent_intro: "{app} wants to access your account.",
    consent_permissions: "It will be able to:",
    consent_no_permissions: "It asks for no particular permission: allowing it only connects it to your account, so that it knows you said yes.",
    consent_redirect: "After you choose, you will be sent back to {host}.",
    consent_signed_in_as: "Signed in as",
    allow: "Allow",
    deny: "Deny",
    third_party_note: "This app is not made by the operator of this server. Allow only apps you trust.",
    unverified_note: "Not verified: nobody has checked who made this app or the name it gives.",
    document_note: "This app describes itself at {host}.",
    homepage: "Home page",
    privacy_policy: "Privacy policy",
    terms: "Terms of service",
    account_title: "Your account",
    connected_apps: "Connected apps",
    no_connected_apps: "No app is connected to your account.",
    disconnect: "Disconnect",
    not_verified: "Not verified",
    app_added_by_operator: "Added by this server's operator on {date}.",
    app_registered_itself: "Registered itself on {date}; nobody checked who made it.",
    app_describes_itself: "Describes itself at {host}; first seen on {date}.",
    app_sends_back: "Sends you back to {places}.",
    app_last_used: "Last used {when}.",
    app_never_used: "Not used since you connected it.",
    disconnect_note: "Disconnecting stops the app at once: its access to your account ends now, and it must ask you again to come back.",
    sign_out: "Sign out",
    signed_out: "You are signed out.",
    sign_out_title: "Sign out?",
    sign_out_asked_by: "Asked by",
    sign_out_question: "You will be signed out on this device.",
    error_title: "Something is wrong",
    error_next: "Go back to the app you came from and start again. If it keeps happening, tell the people who run the app or this server.",
    home: "Home",
    home_title: "Sign-in server",
    home_intro: "This server signs people in and lets the apps and AI agents they allow use its services for them, only with their consent (OAuth 2.1 and OpenID Connect).",
    home_account: "Your account and connected apps",
    home_developers: "For developers, the discovery document:",
    not_found_title: "Nothing here",
    not_found: "There is no page at this address. Check the link, or start from the home page.",
    wrong_method: "This address takes a form sent from one of this server's pages, not a visit. Start again from the app, or from the home page.",
    form_expired: "This form has expired or was not sent from this site. Go back, reload the page and try again.",
    sign_in_again: "This sign-in page had expired or was already sent. Enter your password again.",
    consent_again: "Nothing was decided: that page had expired, was already answered, or asked for less than the app asks for now. Look again and choose.",
    consent_made: "You already chose on this page, so nothing was sent again. The app has what you allowed.",
    continue_to_app: "Continue to {app}",
    scope_openid: "Know who you are (your account ID)",
    scope_profile: "See your name and username",
    scope_email: "See your email address",
    scope_offline_access: "Keep access while you are away, until you disconnect it",
    continue_with: "Continue with {provider}",
    or_password: "Or sign in with your password",
    upstream_failed_title: "You were not signed in",
    upstream_no_sign_in: "This answer belongs to no sign-in started in this browser, or to one that was already used or is too old. Start again from the app or the sign-in page.",
    upstream_refused: "{provider} did not sign you in. Try again, or choose another way to sign in.",
    upstream_unreachable: "{provider} could not be reached. Try again in a few minutes.",
    upstream_bad_answer: "{provider}'s answer could not be trusted, so you were not signed in. Try again; if it happens again, tell this server's operator.",
    upstream_not_admitted: "Your {provider} account cannot be used to sign in here. Ask this server's operator to add you.",
    upstream_not_admitted_domains: "Only people with an address at {domains}, verified by {provider}, can sign in here with it.",
    upstream_email_taken: "An account here already uses the email address of your {provider} account. Sign in to that account another way, then link {provider} from your account page.",
    upstream_link_taken: "That {provider} account is already linked to another person here.",
    passwords_off: "This server signs people in through {providers} only.",
    try_again: "Try again",
    sign_in_methods: "Accounts you sign in with",
    link_with: "Link your {provider} account",
    unlink: "Unlink",
    last_way_in: "This is your only way to sign in here, so it stays linked. Link another account first.",
};

/// Spanish.
pub const ES: Text = Text {
    lang: "es",
    sign_in_title: "Iniciar sesión",
    sign_in_to: "Inicia sesión para continuar en",
    username_or_email: "Usuario o correo electrónico",
    password: "Contraseña",
    sign_in: "Iniciar sesión",
    invalid_credentials: "El usuario, el correo o la contraseña no son correctos.",
    too_many_attempts: "Demasiados intentos fallidos. Inténtalo de nuevo en {minutes} minutos.",
    consent_title: "¿Permitir el acceso?",
    consent_intro: "{app} quiere acceder a tu cuenta.",
    consent_permissions: "Podrá:",
    consent_no_permissions: "No pide ningún permiso concreto: permitirla solo la conecta a tu cuenta, para que sepa que dijiste que sí.",
    consent_redirect: "Después de elegir, volverás a {host}.",
    consent_signed_in_as: "Sesión iniciada como",
    allow: "Permitir",
    deny: "Denegar",
    third_party_note: "Esta aplicación no es del operador de este servidor. Permite solo aplicaciones en las que confíes.",
    unverified_note: "No verificada: nadie ha comprobado quién hizo esta aplicación ni el nombre que da.",
    document_note: "Esta aplicación se describe a sí misma en {host}.",
    homepage: "Página principal",
    privacy_policy: "Política de privacidad",
    terms: "Condiciones del servicio",
    account_title: "Tu cuenta",
    connected_apps: "Aplicaciones conectadas",
    no_connected_apps: "No hay aplicaciones conectadas a tu cuenta.",
    disconnect: "Desconectar",
    not_verified: "No verificada",
    app_added_by_operator: "Añadida por el operador de este servidor el {date}.",
    app_registered_itself: "Se registró sola el {date}; nadie comprobó quién la hizo.",
    app_describes_itself: "Se describe en {host}; vista por primera vez el {date}.",
    app_sends_back: "Te devuelve a {places}.",
    app_last_used: "Usada por última vez: {when}.",
    app_never_used: "No se ha usado desde que la conectaste.",
    disconnect_note: "Al desconectar, la aplicación se detiene al momento: su acceso a tu cuenta termina ahora y tendrá que volver a pedirte permiso.",
    sign_out: "Cerrar sesión",
    signed_out: "Has cerrado la sesión.",
    sign_out_title: "¿Cerrar sesión?",
    sign_out_asked_by: "Lo solicita",
    sign_out_question: "Se cerrará tu sesión en este dispositivo.",
    error_title: "Algo ha fallado",
    error_next: "Vuelve a la aplicación de la que vienes y empieza de nuevo. Si sigue pasando, avisa a quienes gestionan la aplicación o este servidor.",
    home: "Inicio",
    home_title: "Servidor de inicio de sesión",
    home_intro: "Este servidor identifica a las personas y deja que las aplicaciones y los agentes de IA que ellas permiten usen sus servicios en su nombre, solo con su consentimiento (OAuth 2.1 y OpenID Connect).",
    home_account: "Tu cuenta y tus aplicaciones conectadas",
    home_developers: "Para desarrolladores, el documento de descubrimiento:",
    not_found_title: "Aquí no hay nada",
    not_found: "No hay ninguna página en esta dirección. Revisa el enlace o empieza desde el inicio.",
    wrong_method: "Esta dirección recibe un formulario enviado desde una página de este servidor, no una visita. Empieza de nuevo desde la aplicación o desde el inicio.",
    form_expired: "Este formulario ha caducado o no se envió desde este sitio. Vuelve atrás, recarga la página e inténtalo de nuevo.",
    sign_in_again: "Esta página de inicio de sesión había caducado o ya se había enviado. Vuelve a escribir tu contraseña.",
    consent_again: "No se ha decidido nada: esa página había caducado, ya se había respondido o pedía menos de lo que la aplicación pide ahora. Vuelve a mirar y elige.",
    consent_made: "Ya elegiste en esta página, así que no se ha enviado nada de nuevo. La aplicación tiene lo que permitiste.",
    continue_to_app: "Continuar a {app}",
    scope_openid: "Saber quién eres (el ID de tu cuenta)",
    scope_profile: "Ver tu nombre y tu nombre de usuario",
    scope_email: "Ver tu dirección de correo electrónico",
    scope_offline_access: "Mantener el acceso mientras no estás, hasta que lo desconectes",
    continue_with: "Continuar con {provider}",
    or_password: "O inicia sesión con tu contraseña",
    upstream_failed_title: "No se inició la sesión",
    upstream_no_sign_in: "Esta respuesta no corresponde a ningún inicio de sesión empezado en este navegador, o a uno que ya se usó o es demasiado antiguo. Empieza de nuevo desde la aplicación o desde la página de inicio de sesión.",
    upstream_refused: "{provider} no inició tu sesión. Inténtalo de nuevo o elige otra forma de iniciar sesión.",
    upstream_unreachable: "No se pudo contactar con {provider}. Inténtalo de nuevo en unos minutos.",
    upstream_bad_answer: "La respuesta de {provider} no era fiable, así que no se inició la sesión. Inténtalo de nuevo; si vuelve a pasar, avisa a quien administra este servidor.",
    upstream_not_admitted: "Tu cuenta de {provider} no sirve para iniciar sesión aquí. Pide a quien administra este servidor que te añada.",
    upstream_not_admitted_domains: "Solo pueden iniciar sesión aquí con {provider} las personas con una dirección en {domains} verificada por {provider}.",
    upstream_email_taken: "Una cuenta de aquí ya usa la dirección de correo de tu cuenta de {provider}. Inicia sesión en esa cuenta de otra forma y vincula {provider} desde la página de tu cuenta.",
    upstream_link_taken: "Esa cuenta de {provider} ya está vinculada a otra persona aquí.",
    passwords_off: "Este servidor solo inicia sesiones a través de {providers}.",
    try_again: "Intentar de nuevo",
    sign_in_methods: "Cuentas con las que inicias sesión",
    link_with: "Vincular tu cuenta de {provider}",
    unlink: "Desvincular",
    last_way_in: "Es tu única forma de iniciar sesión aquí, así que sigue vinculada. Vincula antes otra cuenta.",
};

/// Japanese.
pub const JA: Text = Text {
    lang: "ja",
    sign_in_title: "サインイン",
    sign_in_to: "続行するにはサインインしてください:",
    username_or_email: "ユーザー名またはメールアドレス",
    password: "パスワード",
    sign_in: "サインイン",
    invalid_credentials: "ユーザー名、メールアドレス、またはパスワードが正しくありません。",
    too_many_attempts: "失敗した試行が多すぎます。{minutes} 分後にもう一度お試しください。",
    consent_title: "アクセスを許可しますか？",
    consent_intro: "{app} があなたのアカウントへのアクセスを求めています。",
    consent_permissions: "許可すると、次のことができるようになります:",
    consent_no_permissions: "特定の権限は求めていません。許可すると、あなたが承認したことをアプリが知るために、アカウントに接続されるだけです。",
    consent_redirect: "選択後、{host} に戻ります。",
    consent_signed_in_as: "サインイン中のアカウント:",
    allow: "許可",
    deny: "拒否",
    third_party_note: "このアプリはこのサーバーの運営者が提供するものではありません。信頼できるアプリだけを許可してください。",
    unverified_note: "未確認: このアプリの作成者や名乗っている名前は誰にも確認されていません。",
    document_note: "このアプリは {host} で自身の情報を公開しています。",
    homepage: "ホームページ",
    privacy_policy: "プライバシーポリシー",
    terms: "利用規約",
    account_title: "アカウント",
    connected_apps: "接続済みのアプリ",
    no_connected_apps: "アカウントに接続されているアプリはありません。",
    disconnect: "接続を解除",
    not_verified: "未確認",
    app_added_by_operator: "{date} にこのサーバーの運営者が追加しました。",
    app_registered_itself: "{date} に自身で登録しました。作成者は確認されていません。",
    app_describes_itself: "{host} で自身の情報を公開しています。初回: {date}。",
    app_sends_back: "戻り先: {places}。",
    app_last_used: "最終利用: {when}。",
    app_never_used: "接続してからまだ使われていません。",
    disconnect_note: "接続を解除すると、アプリはすぐに止まります。アカウントへのアクセスは今すぐ終わり、再び使うにはもう一度あなたの許可が必要です。",
    sign_out: "サインアウト",
    signed_out: "サインアウトしました。",
    sign_out_title: "サインアウトしますか？",
    sign_out_asked_by: "要求元:",
    sign_out_question: "このデバイスでサインアウトします。",
    error_title: "問題が発生しました",
    error_next: "元のアプリに戻って、最初からやり直してください。繰り返し起こる場合は、アプリまたはこのサーバーの運営者に知らせてください。",
    home: "ホーム",
    home_title: "サインインサーバー",
    home_intro: "このサーバーは本人を確認し、本人が許可したアプリや AI エージェントだけが、本人の同意のもとでサービスを利用できるようにします（OAuth 2.1 と OpenID Connect）。",
    home_account: "アカウントと接続済みのアプリ",
    home_developers: "開発者向けのディスカバリードキュメント:",
    not_found_title: "ページが見つかりません",
    not_found: "このアドレスにはページがありません。リンクを確認するか、ホームから始めてください。",
    wrong_method: "このアドレスは、このサーバーのページから送信されるフォームを受け付けるものです。アプリまたはホームからやり直してください。",
    form_expired: "このフォームは期限切れか、このサイトから送信されたものではありません。前のページに戻り、再読み込みしてからもう一度お試しください。",
    sign_in_again: "このサインインページは期限切れか、すでに送信済みです。もう一度パスワードを入力してください。",
    consent_again: "何も決定されていません。そのページは期限切れか、すでに回答済みか、アプリが今求めている内容より少ない許可しか示していませんでした。内容を確認して選んでください。",
    consent_made: "このページではすでに選択済みのため、何も再送信していません。アプリにはあなたが許可した内容が渡っています。",
    continue_to_app: "{app} に進む",
    scope_openid: "あなたが誰かを知る（アカウント ID）",
    scope_profile: "名前とユーザー名を見る",
    scope_email: "メールアドレスを見る",
    scope_offline_access: "接続を解除するまで、あなたが不在のときもアクセスを保つ",
    continue_with: "{provider} で続ける",
    or_password: "またはパスワードでサインイン",
    upstream_failed_title: "サインインできませんでした",
    upstream_no_sign_in: "この応答は、このブラウザーで開始されたサインインのものではないか、すでに使われたか、古すぎます。アプリまたはサインインページからやり直してください。",
    upstream_refused: "{provider} でサインインできませんでした。もう一度試すか、別の方法でサインインしてください。",
    upstream_unreachable: "{provider} に接続できませんでした。数分後にもう一度お試しください。",
    upstream_bad_answer: "{provider} の応答を信頼できなかったため、サインインしていません。もう一度お試しください。繰り返し起こる場合は、このサーバーの管理者に連絡してください。",
    upstream_not_admitted: "あなたの {provider} アカウントでは、ここにサインインできません。このサーバーの管理者に追加を依頼してください。",
    upstream_not_admitted_domains: "{provider} でここにサインインできるのは、{provider} が確認した {domains} のアドレスを持つ人だけです。",
    upstream_email_taken: "あなたの {provider} アカウントのメールアドレスは、ここで別のアカウントが使っています。そのアカウントに別の方法でサインインし、アカウントページから {provider} を連携してください。",
    upstream_link_taken: "その {provider} アカウントは、ここで別の人に連携されています。",
    passwords_off: "このサーバーは {providers} によるサインインのみ受け付けます。",
    try_again: "もう一度試す",
    sign_in_methods: "サインインに使うアカウント",
    link_with: "{provider} アカウントを連携する",
    unlink: "連携を解除",
    last_way_in: "これはここにサインインする唯一の方法のため、連携を解除できません。先に別のアカウントを連携してください。",
};

/// Every language the pages speak, English first.
pub const LANGUAGES: [&Text; 3] = [&EN, &ES, &JA];

/// The texts for a request: the first supported language of `ui_locales`
/// (space-separated), else of `Accept-Language` (by quality), else English.
///
/// ```
/// use agentgate_issuer::ui::i18n::pick;
/// assert_eq!(pick(Some("ja en"), None).lang, "ja");
/// assert_eq!(pick(None, Some("fr;q=0.9, es-MX;q=0.8, en;q=0.5")).lang, "es");
/// assert_eq!(pick(None, Some("de")).lang, "en");
/// ```
pub fn pick(ui_locales: Option<&str>, accept_language: Option<&str>) -> &'static Text {
    let known = |tag: &str| {
        let primary = tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        LANGUAGES.into_iter().find(|t| t.lang == primary)
    };
    if let Some(text) = ui_locales.into_iter().flat_map(|l| l.split(' ')).find_map(known) {
        return text;
    }
    let mut ranked: Vec<(f32, &str)> = accept_language
        .unwrap_or("")
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse::<f32>().ok())?;
            (q > 0.0).then_some((q, tag))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked.into_iter().find_map(|(_, tag)| known(tag)).unwrap_or(&EN)
}
