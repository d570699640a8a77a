"""The unsubscribe pages' words in each invite language: the page a contact reaches from an
invite is in the invite's language (`choose_locale`, as the invite chose it).

Plain text (the page template escapes it). Keyed by the template locales of
`bot/email/templates/`: a language added there needs its words here too (a test checks); the
invites' own "Unsubscribe" link text is the button. A native speaker should read them.
"""

from __future__ import annotations

from typing import NamedTuple


class UnsubscribeText(NamedTuple):
    title: str  # the confirm page's heading
    question: str
    button: str  # as the invite's link says it
    done_title: str
    done: str


UNSUBSCRIBE: dict[str, UnsubscribeText] = {
    "da": UnsubscribeText(
        "Afmeld", "Vil du ikke længere modtage henvisningsinvitationer på denne adresse?",
        "Afmeld", "Du er afmeldt",
        "Du modtager ikke flere henvisningsinvitationer fra os på denne adresse."),
    "de": UnsubscribeText(
        "Abmelden", "Keine Empfehlungseinladungen mehr an diese Adresse erhalten?",
        "Abmelden", "Du bist abgemeldet",
        "Du erhältst von uns keine Empfehlungseinladungen mehr an diese Adresse."),
    "en": UnsubscribeText(
        "Unsubscribe", "Stop receiving referral invitations at this address?",
        "Unsubscribe", "You're unsubscribed",
        "You won't receive referral invitations from us at this address any more."),
    "es": UnsubscribeText(
        "Cancelar suscripción",
        "¿Quieres dejar de recibir invitaciones de recomendación en esta dirección?",
        "Cancelar suscripción", "Has cancelado la suscripción",
        "Ya no recibirás invitaciones de recomendación nuestras en esta dirección."),
    "fr": UnsubscribeText(
        "Se désabonner",
        "Ne plus recevoir d'invitations de parrainage à cette adresse ?",
        "Se désabonner", "Vous êtes désabonné",
        "Vous ne recevrez plus d'invitations de parrainage de notre part à cette adresse."),
    "it": UnsubscribeText(
        "Annulla l'iscrizione", "Non vuoi più ricevere inviti di referral a questo indirizzo?",
        "Annulla l'iscrizione", "Iscrizione annullata",
        "Non riceverai più inviti di referral da parte nostra a questo indirizzo."),
    "ja": UnsubscribeText(
        "配信停止", "このアドレスへの紹介のご案内を停止しますか？",
        "配信停止", "配信を停止しました",
        "今後、このアドレスに紹介のご案内はお送りしません。"),
    "nb": UnsubscribeText(
        "Meld deg av", "Vil du slutte å motta vervingsinvitasjoner på denne adressen?",
        "Meld deg av", "Du er meldt av",
        "Du får ikke flere vervingsinvitasjoner fra oss på denne adressen."),
    "nl": UnsubscribeText(
        "Afmelden", "Wil je geen uitnodigingen om vrienden aan te bevelen meer ontvangen op "
        "dit adres?", "Afmelden", "Je bent afgemeld",
        "Je ontvangt van ons geen uitnodigingen om vrienden aan te bevelen meer op dit adres."),
    "pt-BR": UnsubscribeText(
        "Cancelar inscrição", "Deixar de receber convites de indicação neste endereço?",
        "Cancelar inscrição", "Inscrição cancelada",
        "Você não receberá mais nossos convites de indicação neste endereço."),
    "ru": UnsubscribeText(
        "Отписаться", "Больше не получать реферальные приглашения на этот адрес?",
        "Отписаться", "Вы отписались",
        "Вы больше не будете получать от нас реферальные приглашения на этот адрес."),
    "sv": UnsubscribeText(
        "Avsluta prenumerationen", "Vill du inte längre få värvningsinbjudningar till den här "
        "adressen?", "Avsluta prenumerationen", "Prenumerationen är avslutad",
        "Du får inga fler värvningsinbjudningar från oss till den här adressen."),
    "zh-CN": UnsubscribeText(
        "退订", "不再向此地址接收推荐邀请？", "退订", "已退订",
        "我们将不再向此地址发送推荐邀请。"),
    "zh-TW": UnsubscribeText(
        "取消訂閱", "不再於此地址接收推薦邀請？", "取消訂閱", "已取消訂閱",
        "我們將不再寄送推薦邀請到此地址。"),
}  # fmt: skip
