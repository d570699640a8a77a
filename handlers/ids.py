"""Every callback, block and action id the app uses, in one place."""

from enum import StrEnum


class Callback(StrEnum):
    IMPORT = "referral_import"
    CONTACTS = "referral_contacts"
    CAMPAIGN = "referral_campaign"  # create / edit a campaign
    MAILCHIMP_KEY = "referral_mailchimp_key"  # paste a Mailchimp API key
    # issue 10: managing from Slack
    CONTACT_SEARCH = "referral_contact_search"  # the search modal (Home's Search contacts)
    SEGMENT_CREATE = "referral_segment_create"
    SEGMENT_RENAME = "referral_segment_rename"
    SEGMENT_DELETE = "referral_segment_delete"  # asks first when campaigns target it
    UNDO = "referral_undo"  # confirm an undo (and whether advocates go too)
    MAP_COLUMNS = "referral_map_columns"  # which header holds each field of a file
    SOURCES = "referral_sources"  # *All sources*: every source of an import, by pages


class BlockId(StrEnum):
    SEGMENT = "segment_block"
    NEW_SEGMENT = "new_segment_block"
    FILES = "csv_block"
    EMAIL = "email_block"
    FIRST_NAME = "first_name_block"
    LAST_NAME = "last_name_block"
    LOCALE = "locale_block"
    SEARCH = "search_block"
    UPLOAD = "upload_block"
    CAMPAIGN_NAME = "campaign_name_block"
    CAMPAIGN_STORE_URL = "campaign_store_url_block"
    CAMPAIGN_SENDER = "campaign_sender_block"
    CAMPAIGN_OFFER = "campaign_offer_block"
    CAMPAIGN_INVITE = "campaign_invite_block"
    CAMPAIGN_DELAY = "campaign_delay_block"
    TARGET = "target_block"
    MAILCHIMP_KEY = "mailchimp_key_block"
    MAILCHIMP_LISTS = "mailchimp_lists_block"
    # issue 10
    CONSENT = "consent_block"
    REVIEW_CHANNEL = "review_channel_block"  # the import form opened from Home: where to review
    CONTACT_QUERY = "contact_query_block"
    CONTACT_MORE_SEGMENTS = "contact_more_segments_block"  # a card's menu of further segments
    SEGMENT_NAME = "segment_name_block"
    UNDO_ADVOCATES = "undo_advocates_block"
    LEADS_USERS = "leads_users_block"
    # Map columns: one block per field, "map_<field>_block" (see mapping_messages.field_block)
    MAP_EMAIL = "map_email_block"
    MAP_FIRST_NAME = "map_first_name_block"
    MAP_LAST_NAME = "map_last_name_block"
    MAP_LOCALE = "map_locale_block"
    MAP_SUBSCRIBED = "map_subscribed_block"
    MAP_SHEET = "map_sheet_block"
    # a review's buttons, "review_actions:<revision>": the revision of the import it shows
    REVIEW_ACTIONS = "review_actions"


class Action(StrEnum):
    SEGMENT = "segment_select"
    NEW_SEGMENT = "new_segment_input"
    FILES = "csv_files"
    EMAIL = "email_input"
    FIRST_NAME = "first_name_input"
    LAST_NAME = "last_name_input"
    LOCALE = "locale_input"
    REMOVE_SOURCE = "review_remove_source"
    REVIEW_CONTACTS = "review_contacts"
    ADD_MORE = "review_add_more"
    APPROVE = "review_approve"
    REJECT = "review_reject"
    CANCEL = "review_cancel"  # an approved import under way (and reviews drawn before WITHDRAW)
    WITHDRAW = "review_withdraw"  # the review's own Cancel: a draft only
    REMOVE_CONTACT = "contacts_remove"
    PAGE = "contacts_page"
    SEARCH = "contacts_search"
    UPLOAD_SEGMENT = "upload_segment_select"
    UPLOAD_REVIEW = "upload_review"
    # campaigns
    CAMPAIGN_CREATE = "campaign_create"
    CAMPAIGN_EDIT = "campaign_edit"
    CAMPAIGN_LIVE = "campaign_live"
    CAMPAIGN_PAUSE = "campaign_pause"
    CAMPAIGN_MORE = "campaign_more"  # value: the offset of the page it shows
    CAMPAIGN_RETRY_SENDING = "campaign_retry_sending"  # value: the campaign id
    CAMPAIGN_EMAIL_UNSENT = "campaign_email_unsent"  # value: the campaign id
    CAMPAIGN_RESEND_UNCERTAIN = "campaign_resend_uncertain"  # value: the campaign id
    CAMPAIGN_NAME = "campaign_name_input"
    CAMPAIGN_STORE_URL = "campaign_store_url_input"
    CAMPAIGN_SENDER = "campaign_sender_input"
    CAMPAIGN_OFFER = "campaign_offer_input"
    CAMPAIGN_INVITE = "campaign_invite_input"
    CAMPAIGN_DELAY = "campaign_delay_input"
    # the import thread's next step, and the enrollment report
    TARGET_CHOICE = "target_campaign_select"
    TARGET = "target_campaign"
    TARGET_GO_LIVE = "target_go_live"
    CANCEL_INVITES = "enrollment_cancel_invites"
    RESEND_UNCERTAIN = "enrollment_resend_uncertain"
    RETRY_SENDING = "enrollment_retry_sending"
    EMAIL_UNSENT = "enrollment_email_unsent"  # the invites the invite email being off held back
    # Mailchimp: /referral mailchimp, the API key modal, the import modal's lists
    MAILCHIMP_CONNECT = "mailchimp_connect"  # opens the API key modal
    MAILCHIMP_SIGN_IN = "mailchimp_sign_in"  # a URL button to Mailchimp's sign-in (acked only)
    MAILCHIMP_DISCONNECT = "mailchimp_disconnect"
    MAILCHIMP_KEY = "mailchimp_key_input"
    MAILCHIMP_LISTS = "mailchimp_lists_select"
    # App Home
    HOME_NEW_IMPORT = "home_new_import"  # opens the import form with a channel to review in
    HOME_SEARCH_CONTACTS = "home_search_contacts"  # opens the contact search modal
    HOME_MORE_IMPORTS = "home_more_imports"  # value: how many imports to show
    HOME_MORE_SEGMENTS = "home_more_segments"  # value: how many segments to show
    HOME_LESS_IMPORTS = "home_less_imports"  # *Show less*: the same value, the first page
    HOME_LESS_SEGMENTS = "home_less_segments"
    # consent and dry run (import form, review message)
    CONSENT = "consent_checkbox"
    REVIEW_CHANNEL = "review_channel_select"
    PREVIEW_ONLY = "review_preview_only"
    CONFIRM_CONSENT = "review_confirm_consent"  # on the review message, when it's missing
    # /referral contacts: search results and a contact's card
    CONTACT_QUERY = "contact_query_input"
    CONTACT_SHOW = "contact_show"  # value: contact id
    CONTACT_MORE = "contact_more"  # value: the next page's offset and query
    CONTACT_REMOVE_FROM_SEGMENT = "contact_remove_from_segment"  # value: contact:segment
    # the menu of a card's segments past those with a button: each option's value as above
    CONTACT_REMOVE_FROM_SEGMENT_PICK = "contact_remove_from_segment_pick"
    CONTACT_UNSUBSCRIBE = "contact_unsubscribe"
    CONTACT_RESUBSCRIBE = "contact_resubscribe"  # a confirm dialog: the contact agreed
    CONTACT_DELETE = "contact_delete"  # a confirm dialog: everywhere, links answer 410
    # /referral segments
    SEGMENT_CREATE = "segment_create"
    SEGMENT_RENAME = "segment_rename"  # value: segment id
    SEGMENT_DELETE = "segment_delete"
    SEGMENT_EXPORT = "segment_export"
    SEGMENT_NAME = "segment_name_input"
    SEGMENT_MORE = "segment_more"
    # undo an import (the import's thread, Home)
    UNDO = "import_undo"  # value: batch id; opens the confirmation modal
    UNDO_ADVOCATES = "undo_advocates_checkbox"
    # /referral leads and /referral audit
    LEADS_ADD = "leads_add"
    LEADS_REMOVE = "leads_remove"  # value: user id
    LEADS_USERS = "leads_users_select"
    AUDIT_MORE = "audit_more"  # value: the oldest entry id shown
    # column mapping (the review message's source lines, and its modal)
    MAP_COLUMNS = "review_map_columns"  # value: batch:source; opens the mapping modal
    MAP_FIELD = "map_column_select"  # each field's select (told apart by block id)
    MAP_SHEET = "map_sheet_select"  # a workbook's sheet whose columns the modal shows
    # *All sources*: the review message shows 30 sources; a modal pages through them all
    SOURCES_OPEN = "review_all_sources"  # value: batch:index of the first source to show
    SOURCES_NEXT = "sources_next"  # value: the offset of the page it shows
    SOURCES_PREVIOUS = "sources_previous"
    SOURCES_REMOVE = "sources_remove"  # value: batch:source, as the message's Remove
    # a thread's offer of a CSV holding customers' details, sent by DM to a member who asks
    SEND_SKIPPED_ROWS = "thread_send_skipped_rows"  # value: batch:source
    SEND_UNDELIVERED = "thread_send_undelivered_invites"  # value: enrollment id
