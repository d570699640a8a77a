"""The public pages' words in each invite language: the page a contact reaches from an
invite is in the invite's language (`choose_locale`, as the invite chose it); a page for a
visitor we know nothing of (an address that is no page) is in the language their browser asks
for (`visitor_language`): a referral link's visitor (a friend of the advocate, whose language
we don't know), and an unsubscribe link whose contact is gone or that isn't ours.

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

# Our side failed (the database out of reach, a bug): 503, with Retry-After. It was aiohttp's
# bare "500 Internal Server Error", without our headers, in no visitor's language
TRY_AGAIN: dict[str, PageText] = {
    "da": PageText("Prøv igen om lidt", "Noget gik galt hos os. Prøv igen om et par minutter."),
    "de": PageText("Bitte gleich noch einmal versuchen", "Bei uns ist etwas schiefgelaufen. "
                   "Bitte versuchen Sie es in ein paar Minuten noch einmal."),
    "en": PageText("Try again in a moment", "Something went wrong on our side. Please try "
                   "again in a few minutes."),
    "es": PageText("Inténtalo de nuevo en un momento", "Algo salió mal por nuestra parte. "
                   "Vuelve a intentarlo en unos minutos."),
    "fr": PageText("Réessayez dans un instant", "Un problème est survenu de notre côté. "
                   "Réessayez dans quelques minutes."),
    "it": PageText("Riprova tra poco", "Qualcosa non ha funzionato da parte nostra. Riprova "
                   "tra qualche minuto."),
    "ja": PageText("しばらくしてからもう一度お試しください",
                   "こちら側で問題が発生しました。数分後にもう一度お試しください。"),
    "nb": PageText("Prøv igjen om litt", "Noe gikk galt hos oss. Prøv igjen om noen minutter."),
    "nl": PageText("Probeer het zo opnieuw", "Er ging bij ons iets mis. Probeer het over een "
                   "paar minuten opnieuw."),
    "pt-BR": PageText("Tente novamente em instantes", "Algo deu errado do nosso lado. Tente "
                      "novamente em alguns minutos."),
    "ru": PageText("Попробуйте ещё раз чуть позже", "У нас что-то пошло не так. Попробуйте ещё "
                   "раз через несколько минут."),
    "sv": PageText("Försök igen om en stund", "Något gick fel hos oss. Försök igen om några "
                   "minuter."),
    "zh-CN": PageText("请稍后再试", "我们这边出了点问题。请过几分钟再试。"),
    "zh-TW": PageText("請稍後再試", "我們這邊出了點問題。請過幾分鐘再試。"),
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

# A referral code nobody has (404)
LINK_NOT_FOUND: dict[str, PageText] = {
    "da": PageText("Linket findes ikke", "Dette henvisningslink findes ikke."),
    "de": PageText("Link nicht gefunden", "Diesen Empfehlungslink gibt es nicht."),
    "en": PageText("Link not found", "This referral link doesn't exist."),
    "es": PageText("Enlace no encontrado", "Este enlace de recomendación no existe."),
    "fr": PageText("Lien introuvable", "Ce lien de parrainage n'existe pas."),
    "it": PageText("Link non trovato", "Questo link di referral non esiste."),
    "ja": PageText("リンクが見つかりません", "この紹介リンクは存在しません。"),
    "nb": PageText("Fant ikke lenken", "Denne vervelenken finnes ikke."),
    "nl": PageText("Link niet gevonden", "Deze aanbevelingslink bestaat niet."),
    "pt-BR": PageText("Link não encontrado", "Este link de indicação não existe."),
    "ru": PageText("Ссылка не найдена", "Такой реферальной ссылки нет."),
    "sv": PageText("Länken hittades inte", "Den här värvningslänken finns inte."),
    "zh-CN": PageText("找不到链接", "此推荐链接不存在。"),
    "zh-TW": PageText("找不到連結", "此推薦連結不存在。"),
}  # fmt: skip

# A deleted advocate's code (410)
LINK_GONE: dict[str, PageText] = {
    "da": PageText("Linket er ikke længere aktivt", "Dette henvisningslink virker ikke længere."),
    "de": PageText("Link nicht mehr aktiv", "Dieser Empfehlungslink funktioniert nicht mehr."),
    "en": PageText("Link no longer active", "This referral link doesn't work any more."),
    "es": PageText("El enlace ya no está activo", "Este enlace de recomendación ya no funciona."),
    "fr": PageText("Lien désactivé", "Ce lien de parrainage ne fonctionne plus."),
    "it": PageText("Link non più attivo", "Questo link di referral non funziona più."),
    "ja": PageText("リンクは無効になりました", "この紹介リンクは現在ご利用いただけません。"),
    "nb": PageText("Lenken er ikke lenger aktiv", "Denne vervelenken virker ikke lenger."),
    "nl": PageText("Link niet meer actief", "Deze aanbevelingslink werkt niet meer."),
    "pt-BR": PageText("O link não está mais ativo", "Este link de indicação não funciona mais."),
    "ru": PageText("Ссылка больше не действует", "Эта реферальная ссылка больше не работает."),
    "sv": PageText("Länken är inte längre aktiv", "Den här värvningslänken fungerar inte längre."),
    "zh-CN": PageText("链接已失效", "此推荐链接已无法使用。"),
    "zh-TW": PageText("連結已失效", "此推薦連結已無法使用。"),
}  # fmt: skip

# A campaign's store URL that can't be redirected to (502)
LINK_BROKEN: dict[str, PageText] = {
    "da": PageText("Linket virker ikke", "Butikkens adresse i denne kampagne er forkert: "
                   "butikken skal rette den."),
    "de": PageText("Link funktioniert nicht", "Die Adresse des Shops in dieser Kampagne ist "
                   "fehlerhaft: Der Shop muss sie korrigieren."),
    "en": PageText("Link not working", "The shop's address in this campaign is broken: the "
                   "shop needs to correct it."),
    "es": PageText("El enlace no funciona", "La dirección de la tienda en esta campaña es "
                   "incorrecta: la tienda debe corregirla."),
    "fr": PageText("Lien hors service", "L'adresse de la boutique dans cette campagne est "
                   "erronée : la boutique doit la corriger."),
    "it": PageText("Link non funzionante", "L'indirizzo del negozio in questa campagna è "
                   "errato: il negozio deve correggerlo."),
    "ja": PageText("リンクが機能していません",
                   "このキャンペーンのショップのアドレスに誤りがあります。ショップによる修正が必要です。"),
    "nb": PageText("Lenken virker ikke", "Butikkens adresse i denne kampanjen er feil: "
                   "butikken må rette den."),
    "nl": PageText("Link werkt niet", "Het adres van de winkel in deze campagne klopt niet: "
                   "de winkel moet het corrigeren."),
    "pt-BR": PageText("O link não funciona", "O endereço da loja nesta campanha está "
                      "incorreto: a loja precisa corrigi-lo."),
    "ru": PageText("Ссылка не работает", "Адрес магазина в этой кампании указан неверно: "
                   "магазину нужно его исправить."),
    "sv": PageText("Länken fungerar inte", "Butikens adress i den här kampanjen är felaktig: "
                   "butiken behöver rätta den."),
    "zh-CN": PageText("链接无法使用", "此活动中的商店网址有误，需要由商店更正。"),
    "zh-TW": PageText("連結無法使用", "此活動中的商店網址有誤，需要由商店更正。"),
}  # fmt: skip

# An unsubscribe link whose contact is gone (deleted, its import undone)
NOT_ON_LIST: dict[str, PageText] = {
    "da": PageText("Ikke på vores liste",
                   "Denne adresse modtager ikke længere henvisningsinvitationer fra os."),
    "de": PageText("Nicht auf unserer Liste",
                   "Diese Adresse erhält keine Empfehlungseinladungen mehr von uns."),
    "en": PageText("Not on our list",
                   "This address no longer receives referral invitations from us."),
    "es": PageText("No está en nuestra lista",
                   "Esta dirección ya no recibe invitaciones de recomendación nuestras."),
    "fr": PageText("Absent de notre liste",
                   "Cette adresse ne reçoit plus d'invitations de parrainage de notre part."),
    "it": PageText("Non presente nella nostra lista",
                   "Questo indirizzo non riceve più inviti di referral da parte nostra."),
    "ja": PageText("配信リストにありません",
                   "このアドレスには今後、紹介のご案内をお送りしません。"),
    "nb": PageText("Ikke på listen vår",
                   "Denne adressen får ikke lenger vervingsinvitasjoner fra oss."),
    "nl": PageText("Niet op onze lijst", "Dit adres ontvangt van ons geen uitnodigingen om "
                   "vrienden aan te bevelen meer."),
    "pt-BR": PageText("Fora da nossa lista",
                      "Este endereço não recebe mais nossos convites de indicação."),
    "ru": PageText("Адреса нет в нашем списке",
                   "На этот адрес больше не приходят наши реферальные приглашения."),
    "sv": PageText("Inte på vår lista",
                   "Den här adressen får inte längre värvningsinbjudningar från oss."),
    "zh-CN": PageText("不在我们的名单中", "此地址已不再接收我们的推荐邀请。"),
    "zh-TW": PageText("不在我們的名單中", "此地址已不再接收我們的推薦邀請。"),
}  # fmt: skip

# An unsubscribe link whose contact was deleted, its address unknown to us (nothing recorded):
# nothing is on its way to it, but a later import of the address may invite it again
CONTACT_GONE: dict[str, PageText] = {
    "da": PageText("Allerede fjernet",
                   "Adressen, som dette link blev sendt til, er fjernet fra vores liste, så "
                   "der er ingen invitationer på vej til den. Vi kunne ikke registrere en "
                   "afmelding: Hvis du får en ny invitation, så brug afmeldingslinket i den."),
    "de": PageText("Bereits entfernt",
                   "Die Adresse, an die dieser Link geschickt wurde, wurde von unserer Liste "
                   "entfernt, es sind also keine Einladungen an sie unterwegs. Eine Abmeldung "
                   "konnten wir nicht speichern: Wenn du wieder eine Einladung bekommst, nutze "
                   "den Abmeldelink darin."),
    "en": PageText("Already removed",
                   "The address this link was sent to was removed from our list, so no "
                   "invitations are on their way to it. We couldn't record an unsubscribe: if "
                   "you get another invitation, use the unsubscribe link in that one."),
    "es": PageText("Ya eliminada",
                   "La dirección a la que se envió este enlace se eliminó de nuestra lista, así "
                   "que no hay invitaciones en camino. No pudimos registrar la cancelación: si "
                   "recibes otra invitación, usa el enlace para cancelar la suscripción que "
                   "incluya."),
    "fr": PageText("Déjà retirée",
                   "L'adresse à laquelle ce lien a été envoyé a été retirée de notre liste : "
                   "aucune invitation n'est en route vers elle. Nous n'avons pas pu enregistrer "
                   "de désabonnement : si vous recevez une autre invitation, utilisez le lien "
                   "de désabonnement qu'elle contient."),
    "it": PageText("Già rimosso",
                   "L'indirizzo a cui è stato inviato questo link è stato rimosso dalla nostra "
                   "lista, quindi non ci sono inviti in arrivo. Non abbiamo potuto registrare "
                   "l'annullamento: se ricevi un altro invito, usa il link per annullare "
                   "l'iscrizione che contiene."),
    "ja": PageText("削除済みです",
                   "このリンクの送信先アドレスはリストから削除されているため、送信予定の"
                   "ご案内はありません。配信停止は記録できませんでした。今後ご案内が届いた"
                   "場合は、そのメールの配信停止リンクをご利用ください。"),
    "nb": PageText("Allerede fjernet",
                   "Adressen denne lenken ble sendt til, er fjernet fra listen vår, så ingen "
                   "invitasjoner er på vei dit. Vi kunne ikke registrere en avmelding: Får du "
                   "en ny invitasjon, bruk avmeldingslenken i den."),
    "nl": PageText("Al verwijderd",
                   "Het adres waarnaar deze link is gestuurd, is van onze lijst verwijderd, dus "
                   "er zijn geen uitnodigingen naar onderweg. We konden geen afmelding "
                   "vastleggen: krijg je nog een uitnodiging, gebruik dan de afmeldlink daarin."),
    "pt-BR": PageText("Já removido",
                      "O endereço para o qual este link foi enviado foi removido da nossa "
                      "lista, então não há convites a caminho dele. Não conseguimos registrar "
                      "o cancelamento: se você receber outro convite, use o link para "
                      "cancelar a inscrição que ele traz."),
    "ru": PageText("Адрес уже удалён",
                   "Адрес, на который была отправлена эта ссылка, удалён из нашего списка, "
                   "поэтому приглашений на него не запланировано. Записать отписку мы не "
                   "смогли: если вы получите ещё одно приглашение, воспользуйтесь ссылкой для "
                   "отписки в нём."),
    "sv": PageText("Redan borttagen",
                   "Adressen som den här länken skickades till har tagits bort från vår lista, "
                   "så inga inbjudningar är på väg dit. Vi kunde inte registrera någon "
                   "avregistrering: om du får en ny inbjudan, använd avregistreringslänken i "
                   "den."),
    "zh-CN": PageText("已被移除",
                      "此链接的收件地址已从我们的名单中移除，因此没有待发送给它的邀请。"
                      "我们无法记录退订：如果你再次收到邀请，请使用该邮件中的退订链接。"),
    "zh-TW": PageText("已被移除",
                      "此連結的收件地址已從我們的名單中移除，因此沒有待寄送給它的邀請。"
                      "我們無法記錄取消訂閱：如果你再次收到邀請，請使用該郵件中的取消訂閱連結。"),
}  # fmt: skip

# An unsubscribe link that isn't ours (forged, mangled by a mail client) (400)
LINK_NOT_VALID: dict[str, PageText] = {
    "da": PageText("Ugyldigt link", "Dette afmeldingslink er ikke gyldigt."),
    "de": PageText("Ungültiger Link", "Dieser Abmeldelink ist ungültig."),
    "en": PageText("Link not valid", "This unsubscribe link isn't valid."),
    "es": PageText("Enlace no válido", "Este enlace para cancelar la suscripción no es válido."),
    "fr": PageText("Lien non valide", "Ce lien de désabonnement n'est pas valide."),
    "it": PageText("Link non valido", "Questo link per annullare l'iscrizione non è valido."),
    "ja": PageText("無効なリンク", "この配信停止リンクは無効です。"),
    "nb": PageText("Ugyldig lenke", "Denne avmeldingslenken er ikke gyldig."),
    "nl": PageText("Ongeldige link", "Deze afmeldlink is niet geldig."),
    "pt-BR": PageText("Link inválido", "Este link para cancelar a inscrição não é válido."),
    "ru": PageText("Недействительная ссылка", "Эта ссылка для отписки недействительна."),
    "sv": PageText("Ogiltig länk", "Den här avregistreringslänken är inte giltig."),
    "zh-CN": PageText("链接无效", "此退订链接无效。"),
    "zh-TW": PageText("連結無效", "此取消訂閱連結無效。"),
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
