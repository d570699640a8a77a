"""The public pages' words in each invite language: the page a contact reaches from an
invite is in the invite's language (`choose_locale`, as the invite chose it); a page for a
visitor we know nothing of (an address that is no page) is in the language their browser asks
for (`visitor_language`).

Plain text (the page template escapes it). Keyed by the template locales of
`bot/email/templates/`: a language added there needs its words here too (a test checks); the
invites' own "Unsubscribe" link text is the button. A native speaker should read them.
"""

from __future__ import annotations

from typing import NamedTuple

from bot.email.render import best_locale

FALLBACK = "en"


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


class PageText(NamedTuple):
    title: str
    message: str


# An address that is no page of ours (404)
NOT_FOUND: dict[str, PageText] = {
    "da": PageText("Siden findes ikke", "Der er ingen side på denne adresse."),
    "de": PageText("Seite nicht gefunden", "Unter dieser Adresse gibt es keine Seite."),
    "en": PageText("Page not found", "There's no page at this address."),
    "es": PageText("Página no encontrada", "No hay ninguna página en esta dirección."),
    "fr": PageText("Page introuvable", "Il n'y a pas de page à cette adresse."),
    "it": PageText("Pagina non trovata", "Non c'è nessuna pagina a questo indirizzo."),
    "ja": PageText("ページが見つかりません", "このURLのページはありません。"),
    "nb": PageText("Fant ikke siden", "Det finnes ingen side på denne adressen."),
    "nl": PageText("Pagina niet gevonden", "Er staat geen pagina op dit adres."),
    "pt-BR": PageText("Página não encontrada", "Não há nenhuma página neste endereço."),
    "ru": PageText("Страница не найдена", "По этому адресу нет страницы."),
    "sv": PageText("Sidan hittades inte", "Det finns ingen sida på den här adressen."),
    "zh-CN": PageText("找不到页面", "此网址没有页面。"),
    "zh-TW": PageText("找不到網頁", "此網址沒有網頁。"),
}  # fmt: skip

# A page of ours asked for with a method it doesn't take (405): a form posted to a link
NOT_ALLOWED: dict[str, PageText] = {
    "da": PageText("Siden er ikke tilgængelig", "Denne side kan ikke åbnes på denne måde."),
    "de": PageText("Seite nicht verfügbar", "Diese Seite kann so nicht geöffnet werden."),
    "en": PageText("Page not available", "This page can't be opened this way."),
    "es": PageText("Página no disponible", "Esta página no se puede abrir de esta forma."),
    "fr": PageText("Page non disponible", "Cette page ne peut pas être ouverte de cette façon."),
    "it": PageText("Pagina non disponibile",
                   "Questa pagina non può essere aperta in questo modo."),
    "ja": PageText("ページを表示できません", "このページはこの方法では開けません。"),
    "nb": PageText("Siden er ikke tilgjengelig", "Denne siden kan ikke åpnes på denne måten."),
    "nl": PageText("Pagina niet beschikbaar",
                   "Deze pagina kan niet op deze manier worden geopend."),
    "pt-BR": PageText("Página indisponível", "Esta página não pode ser aberta desta forma."),
    "ru": PageText("Страница недоступна", "Эту страницу нельзя открыть таким способом."),
    "sv": PageText("Sidan är inte tillgänglig",
                   "Den här sidan kan inte öppnas på det här sättet."),
    "zh-CN": PageText("无法打开页面", "无法以这种方式打开此页面。"),
    "zh-TW": PageText("無法開啟網頁", "無法以這種方式開啟此網頁。"),
}  # fmt: skip

_ACCEPTED_TAGS = 32  # a header's first tags: no browser sends more


def accepted_languages(header: str | None) -> list[str]:
    """An Accept-Language header's tags, most wanted first (by q; equal ones in the header's
    order), leaving out `*` and what it refuses (q=0) or garbles."""
    weighted: list[tuple[float, int, str]] = []
    for n, item in enumerate((header or "").split(",")[:_ACCEPTED_TAGS]):
        tag, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and tag.strip() != "*" and 0 < quality <= 1:
            weighted.append((-quality, n, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def visitor_language(header: str | None) -> str:
    """The language of ours that a visitor's Accept-Language asks for first, else English."""
    return best_locale(accepted_languages(header), UNSUBSCRIBE) or FALLBACK
