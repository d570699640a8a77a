"""Every callback, block and action id the app uses, in one place."""

from enum import StrEnum


class Callback(StrEnum):
    IMPORT = "referral_import"
    CONTACTS = "referral_contacts"


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
    CANCEL = "review_cancel"
    REMOVE_CONTACT = "contacts_remove"
    PAGE = "contacts_page"
    SEARCH = "contacts_search"
    UPLOAD_SEGMENT = "upload_segment_select"
    UPLOAD_REVIEW = "upload_review"
