//! `/admin/users`, administrators only: the provider's accounts, adding one, disabling or
//! re-enabling one and resetting a password (each of the last two signs the account out
//! everywhere).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::error::AppError;
use crate::app::widgets::{action_error, Failure, Loading};
use crate::domain::Role;
use crate::model::AccountRow;

#[component]
pub fn Users() -> impl IntoView {
    let add = ServerAction::<AddAccount>::new();
    let disable = ServerAction::<SetAccountDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let accounts = Resource::new(
        move || {
            (
                add.version().get(),
                disable.version().get(),
                reset.version().get(),
            )
        },
        |_| list_accounts(),
    );
    let done = move || {
        if matches!(reset.value().get(), Some(Ok(()))) {
            Some("Password reset. That user has been signed out everywhere.")
        } else if matches!(add.value().get(), Some(Ok(_))) {
            Some("User added.")
        } else {
            None
        }
    };
    view! {
        <Title text="Users – Manage breast screening"/>
        <h1>"Users"</h1>
        {action_error(add)}
        {action_error(disable)}
        {action_error(reset)}
        <p class="nhsuk-body" role="status" id="users-status">{done}</p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match accounts.await {
                    Ok(rows) => view! { <AccountTable rows disable reset/> <AddUser add/> }.into_any(),
                    Err(error) => view! { <Failure error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn AccountTable(
    rows: Vec<AccountRow>,
    disable: ServerAction<SetAccountDisabled>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    view! {
        <table class="nhsuk-table" id="accounts">
            <caption class="nhsuk-table__caption">"Accounts of your service"</caption>
            <thead class="nhsuk-table__head"><tr>
                <th scope="col">"Name"</th><th scope="col">"Email"</th><th scope="col">"Role"</th>
                <th scope="col">"Status"</th><th scope="col">"Change"</th>
            </tr></thead>
            <tbody class="nhsuk-table__body">
                {rows.into_iter().map(|a| {
                    let status = match &a.disabled_at {
                        Some(at) => view! { <strong class="nhsuk-tag nhsuk-tag--grey">{format!("Disabled {at}")}</strong> }.into_any(),
                        None => view! { <strong class="nhsuk-tag nhsuk-tag--green">"Active"</strong> }.into_any(),
                    };
                    let disabled = a.disabled_at.is_some();
                    let password_id = format!("password-{}", a.id);
                    let (toggle_label, reset_label) = (format!(" {}", a.name), format!(" of {}", a.name));
                    view! {
                        <tr class="nhsuk-table__row" id=format!("account-{}", a.id) data-email=a.email.clone()>
                            <td class="nhsuk-table__cell">{a.name.clone()}</td>
                            <td class="nhsuk-table__cell">{a.email.clone()}</td>
                            <td class="nhsuk-table__cell">{a.role.label()}</td>
                            <td class="nhsuk-table__cell">{status}</td>
                            <td class="nhsuk-table__cell">
                                {(!a.is_you).then(|| view! {
                                    <ActionForm action=disable>
                                        <input type="hidden" name="account_id" value=a.id/>
                                        <input type="hidden" name="disabled" value=(!disabled).to_string()/>
                                        <button type="submit" class="nhsuk-button nhsuk-button--small nhsuk-button--secondary">
                                            {if disabled { "Enable" } else { "Disable" }}
                                            <span class="nhsuk-u-visually-hidden">{toggle_label}</span>
                                        </button>
                                    </ActionForm>
                                })}
                                <details class="nhsuk-details">
                                    <summary class="nhsuk-details__summary">
                                        <span class="nhsuk-details__summary-text">"Reset password"
                                            <span class="nhsuk-u-visually-hidden">{reset_label}</span>
                                        </span>
                                    </summary>
                                    <div class="nhsuk-details__text">
                                        <ActionForm action=reset>
                                            <input type="hidden" name="account_id" value=a.id/>
                                            <div class="nhsuk-form-group">
                                                <label class="nhsuk-label" for=password_id.clone()>"New password (at least 12 characters)"</label>
                                                <input class="nhsuk-input" id=password_id name="password" type="password" autocomplete="new-password" required minlength="12"/>
                                            </div>
                                            <button type="submit" class="nhsuk-button nhsuk-button--small">"Set password"</button>
                                        </ActionForm>
                                    </div>
                                </details>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn AddUser(add: ServerAction<AddAccount>) -> impl IntoView {
    view! {
        <h2>"Add a user"</h2>
        <ActionForm action=add attr:id="add-user">
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="new-name">"Full name"</label>
                <input class="nhsuk-input" id="new-name" name="name" type="text" autocomplete="off" required/>
            </div>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="new-email">"Email address"</label>
                <input class="nhsuk-input" id="new-email" name="email" type="email" autocomplete="off" required/>
            </div>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="new-role">"Role"</label>
                <select class="nhsuk-select" id="new-role" name="role">
                    {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str()>{r.label()}</option> }).collect_view()}
                </select>
            </div>
            <div class="nhsuk-form-group">
                <label class="nhsuk-label" for="new-password">"First password (at least 12 characters)"</label>
                <input class="nhsuk-input" id="new-password" name="password" type="password" autocomplete="new-password" required minlength="12"/>
            </div>
            <button type="submit" class="nhsuk-button" id="add-user-button">"Add user"</button>
        </ActionForm>
    }
}

/// The provider's accounts (administrators only).
#[server(endpoint = "/list_accounts")]
pub async fn list_accounts() -> Result<Vec<AccountRow>, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::admin::accounts(&state, &user)
        .await
        .map_err(context::fail)
}

/// Adds an account to the administrator's provider.
#[server(endpoint = "/add_account")]
pub async fn add_account(
    name: String,
    email: String,
    role: String,
    password: String,
) -> Result<i64, AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    let role: Role = role
        .parse()
        .map_err(|e: crate::domain::UnknownRole| AppError::Invalid(e.to_string()))?;
    crate::server::admin::add_account(&state, &user, &email, &name, role, &password)
        .await
        .map_err(context::fail)
}

/// Disables (`disabled` true) or re-enables an account.
#[server(endpoint = "/set_account_disabled")]
pub async fn set_account_disabled(account_id: i64, disabled: bool) -> Result<(), AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::admin::set_disabled(&state, &user, account_id, disabled)
        .await
        .map_err(context::fail)
}

/// Sets a new password on an account.
#[server(endpoint = "/reset_password")]
pub async fn reset_password(account_id: i64, password: String) -> Result<(), AppError> {
    use crate::app::context;
    let (state, user) = context::user().await?;
    crate::server::admin::reset_password(&state, &user, account_id, &password)
        .await
        .map_err(context::fail)
}
